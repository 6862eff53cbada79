//! A bound on how deeply an ONNX file nests messages, checked before the reader runs.
//!
//! The ONNX schema has two recursions:
//! - a graph holds nodes, whose attributes hold graphs;
//! - a type holds sequence, map and optional types, which hold types.
//!
//! `onnx-rs` follows both by recursion without a limit. A file of 12 KB that nests graphs 1,000
//! deep overflowed the 8 MB main stack and aborted the process (measured 2026-12-02 with
//! onnx-rs 0.1.3). This walk follows only the fields that lead back into a recursion, with its
//! own stack on the heap, and refuses a file that nests more than [`MOST_DEPTH`] messages. It
//! decodes nothing else: on bytes it cannot walk it stops, and the reader reports the damage.

/// Most nested messages on any path (an exported model nests about 8: model, graph, value
/// info, type, tensor type, shape, dimension; control flow adds 3 per level).
pub const MOST_DEPTH: usize = 48;

/// The messages on recursive paths.
#[derive(Clone, Copy)]
enum Kind {
    Model,
    Graph,
    Node,
    Attribute,
    ValueInfo,
    Type,
    /// Sequence and optional types (elem_type = 1) and maps (value_type = 2).
    Element,
    Function,
    TrainingInfo,
}

impl Kind {
    /// The kind of message field `field` holds, when it leads back into a recursion.
    fn child(self, field: u64) -> Option<Kind> {
        use Kind::*;
        match (self, field) {
            (Model, 7) | (TrainingInfo, 1 | 2) | (Attribute, 6 | 11) => Some(Graph),
            (Model, 20) => Some(TrainingInfo),
            (Model, 25) => Some(Function),
            (Graph, 1) | (Function, 7) => Some(Node),
            (Graph, 11..=13) | (Function, 12) => Some(ValueInfo),
            (Node, 5) => Some(Attribute),
            (Attribute, 14 | 15) | (ValueInfo, 2) | (Element, 1 | 2) => Some(Type),
            (Type, 4 | 5 | 9) => Some(Element),
            _ => None,
        }
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// An error message when `bytes` nest more than [`MOST_DEPTH`] messages.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    // (message kind, its bytes' end, the read position in it), deepest last.
    let mut stack: Vec<(Kind, usize, usize)> = vec![(Kind::Model, bytes.len(), 0)];
    while let Some(&mut (kind, end, ref mut at)) = stack.last_mut() {
        if *at >= end {
            stack.pop();
            continue;
        }
        let Some(tag) = varint(&bytes[..end], at) else {
            return Ok(());
        };
        let skip = match tag & 7 {
            0 => varint(&bytes[..end], at).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => varint(&bytes[..end], at).and_then(|n| usize::try_from(n).ok()),
            _ => None,
        };
        let Some(skip) = skip.filter(|&s| s <= end - *at) else {
            return Ok(());
        };
        let start = *at;
        *at += skip;
        if tag & 7 == 2
            && let Some(child) = kind.child(tag >> 3)
        {
            if stack.len() >= MOST_DEPTH {
                return Err(format!(
                    "the file nests messages more than {MOST_DEPTH} deep (graphs in node \
                     attributes, or types in types)"
                ));
            }
            stack.push((child, start + skip, start));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(field: u8, inner: Vec<u8>) -> Vec<u8> {
        let mut out = vec![field << 3 | 2];
        let mut n = inner.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend(inner);
        out
    }

    /// A model whose graph holds a node whose attribute holds a graph … `depth` times.
    fn nested_graphs(depth: usize) -> Vec<u8> {
        let mut graph = Vec::new();
        for _ in 0..depth {
            graph = wrap(1, wrap(5, wrap(6, graph)));
        }
        wrap(7, graph)
    }

    #[test]
    fn deep_nesting_is_refused_and_shallow_nesting_passes() {
        assert!(check(&nested_graphs(10)).is_ok());
        for depth in [20, 1000, 4000] {
            let e = check(&nested_graphs(depth)).unwrap_err();
            assert!(e.contains("nests messages"), "{e}");
        }
        // Types in types: value info (graph field 11) → type → sequence → type …
        let mut ty = Vec::new();
        for _ in 0..100 {
            ty = wrap(4, wrap(1, ty));
        }
        let model = wrap(7, wrap(11, wrap(2, ty)));
        assert!(check(&model).is_err());
        // Bytes it cannot walk are left to the reader.
        assert!(check(&[0xff, 0xff]).is_ok() && check(&[]).is_ok());
    }
}
