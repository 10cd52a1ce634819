//! Loading scvi-tools state dicts (from the conformance fixtures) into scssl's tensor names.
#![allow(dead_code)]

use scssl_models::NamedTensor;
use serde_json::Value;

/// The fixture file `conformance/fixtures/models/<name>`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../conformance/fixtures/models/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Row-major values and shape of a JSON (nested) array.
pub fn array(v: &Value) -> (Vec<f32>, Vec<usize>) {
    match v {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            let parts: Vec<(Vec<f32>, Vec<usize>)> = items.iter().map(array).collect();
            let mut shape = vec![items.len()];
            shape.extend(&parts[0].1);
            (parts.into_iter().flat_map(|p| p.0).collect(), shape)
        }
        Value::Array(items) => (
            items.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            vec![items.len()],
        ),
        other => (vec![other.as_f64().unwrap() as f32], vec![]),
    }
}

/// The transpose of a row-major `[r, c]` matrix.
pub fn transpose(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    (0..c)
        .flat_map(|j| (0..r).map(move |i| v[i * c + j]))
        .collect()
}

/// Maps one scvi-tools parameter or buffer onto scssl's names. `modules` renames module
/// prefixes (`("z_encoder.encoder", "encoder")`): FC layers `<m>.fc_layers.Layer i.0` become
/// `<new>.i.linear`, `.1` the BatchNorm `<new>.i.bn`; plain linear modules `<m>.weight`.
/// Linear weights are transposed (PyTorch stores `[out, in]`). `None` for tensors scssl does
/// not hold (`num_batches_tracked`) or that `modules` does not name.
pub fn map_tensor(name: &str, value: &Value, modules: &[(&str, &str)]) -> Option<NamedTensor> {
    if name.ends_with("num_batches_tracked") {
        return None;
    }
    let (data, shape) = array(value);
    for &(old, new) in modules {
        let Some(rest) = name.strip_prefix(old) else {
            continue;
        };
        let rest = rest.strip_prefix('.')?;
        let (target, param) = if let Some(layer) = rest.strip_prefix("fc_layers.Layer ") {
            let (i, tail) = layer.split_once('.')?;
            let (which, p) = tail.split_once('.')?;
            let p = match (which, p) {
                ("0", p) => format!("linear.{p}"),
                ("1", "weight") => "bn.gamma".into(),
                ("1", "bias") => "bn.beta".into(),
                ("1", p) => format!("bn.{p}"),
                _ => return None,
            };
            (format!("{new}.{i}"), p)
        } else if let Some(p) = rest.strip_prefix("0.") {
            (new.to_string(), p.to_string())
        } else {
            (new.to_string(), rest.to_string())
        };
        let full = if target.is_empty() {
            param.clone()
        } else {
            format!("{target}.{param}")
        };
        let (data, shape) =
            if param.ends_with("weight") && !param.starts_with("bn") && shape.len() == 2 {
                (
                    transpose(&data, shape[0], shape[1]),
                    vec![shape[1], shape[0]],
                )
            } else {
                (data, shape)
            };
        return Some(NamedTensor {
            name: full,
            shape,
            data,
        });
    }
    None
}
