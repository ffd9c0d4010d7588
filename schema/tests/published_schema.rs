//! The checked-in `workflow.schema.json` must be exactly what the AST types
//! generate: editors and the validator read the file, so a stale one lies.
//! Regenerate with `ORCHESTR8_BLESS=1 cargo test -p orchestr8-schema`.

use std::path::Path;

#[test]
fn published_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflow.schema.json");
    let generated = orchestr8_schema::json_schema_text();
    if std::env::var_os("ORCHESTR8_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write workflow.schema.json");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "schema/workflow.schema.json is stale: run `ORCHESTR8_BLESS=1 cargo test -p orchestr8-schema` and commit it"
    );
}
