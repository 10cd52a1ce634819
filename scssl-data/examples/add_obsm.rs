//! Adds a random embedding to an existing AnnData file in place:
//! `cargo run -p scssl-data --example add_obsm -- FILE.h5ad KEY`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, key) = match args.as_slice() {
        [p, k] => (p.clone(), k.clone()),
        _ => return Err("usage: add_obsm FILE KEY".into()),
    };
    let n = scssl_data::io::summarize(&path)?.n_obs;
    let emb = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| (i + j) as f32);
    scssl_data::io::write_obsm(&path, &key, &emb)?;
    println!("added obsm['{key}'] ({n} × 2) to {path}");
    Ok(())
}
