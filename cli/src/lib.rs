//! The library half of the `hegpu` command: what its subcommands run, public so that the
//! command's tests and criterion benches reach it. hegpu's own library (the `hegpu` crate)
//! holds none of it, so its users link none of this.

pub mod bench;
pub mod job;
