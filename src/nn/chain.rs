//! The parameters a plan runs on: the smallest preset that holds the model, with its
//! ciphertext chain cut to the fewest levels the plan fits.
//!
//! A fresh ciphertext starts at the top of the chain and every stage runs on all the primes
//! left above it, so the levels a network does not use are paid for by every stage, every key
//! and every byte sent. Cutting them (the preset's first primes, the same special primes)
//! keeps the security and the plan's arithmetic, with fewer limbs everywhere.

use crate::PlanError;
use crate::Result;
use crate::ckks::{Parameters, Preset};
use std::sync::Arc;

/// `plan` on `preset`'s chain cut to the fewest levels, from `needed` up, that it fits. The
/// whole chain is tried first: a plan it does not hold, no cut of it holds, and its refusal is
/// the one returned.
pub(crate) fn plan_on_cut_chain<T>(
    preset: Preset,
    needed: usize,
    plan: &mut impl FnMut(&Arc<Parameters>) -> Result<T>,
) -> Result<T> {
    let whole = Parameters::preset(preset)?;
    let most = whole.max_level();
    if needed > most {
        return Err(PlanError::TooFewLevels {
            plan: "the model".into(),
            needed,
            chain: preset.name().into(),
            have: most,
        }
        .into());
    }
    let planned = plan(&whole)?;
    for levels in needed..most {
        let cut = Parameters::new(preset.literal_with_levels(levels)?)?;
        if let Ok(fewer) = plan(&cut) {
            return Ok(fewer);
        }
    }
    Ok(planned)
}

/// [`plan_on_cut_chain`] with the smallest preset that holds the plan; else every preset's
/// refusal, named.
pub(crate) fn plan_on_smallest_chain<T>(
    needed: usize,
    mut plan: impl FnMut(&Arc<Parameters>) -> Result<T>,
) -> std::result::Result<(Preset, T), Vec<String>> {
    let mut refusals = Vec::new();
    for preset in Preset::ALL {
        match plan_on_cut_chain(preset, needed, &mut plan) {
            Ok(planned) => return Ok((preset, planned)),
            Err(e) => refusals.push(format!("{}: {e}", preset.name())),
        }
    }
    Err(refusals)
}
