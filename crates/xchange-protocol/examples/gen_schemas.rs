//! Writes the JSON Schemas of AIXP/1 to `schemas/v1/` at the workspace root.
//!
//! `cargo run -p xchange-protocol --example gen_schemas --features schema`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/v1");
    std::fs::create_dir_all(&dir)?;
    for (name, schema) in xchange_protocol::all_schemas() {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, xchange_protocol::schema_file_text(&schema))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
