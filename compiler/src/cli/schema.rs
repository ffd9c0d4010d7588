//! `orchestr8 schema`: the published JSON Schema of workflow documents.

use std::io::Write;

use super::Status;

pub(super) fn run() -> Status {
    let mut out = std::io::stdout().lock();
    match out.write_all(orchestr8_schema::json_schema_text().as_bytes()) {
        Ok(()) => Status::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Success,
        Err(e) => {
            eprintln!("error: cannot write the schema: {e}");
            Status::Usage
        }
    }
}
