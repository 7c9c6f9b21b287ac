//! `intake validate` and `intake gen`: no server involved.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use intake_model::{parse_schema_upload, FileValidator, LineError, ObjectType, Report, Schema};
use serde_json::Value;

use super::conn::CliError;
use super::{parse_type, stderr_is_terminal};
use crate::exit;

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// LDJSON file to check
    file: PathBuf,
    /// Object type: ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER or STAGE
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    object_type: ObjectType,
    /// Custom fields: a JSON array as for `intake schema upload`, or the output of
    /// `intake schema list --json`
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Print {"totalSuccessCount", "totalErrorCount", "errors": [{"line", "description"}]}
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Object type: ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER or STAGE
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    object_type: ObjectType,
    /// Number of lines
    #[arg(long)]
    count: u64,
    /// Seed: the same seed gives the same file
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of invalid lines, from 0 to 1
    #[arg(long, default_value_t = 0.0)]
    invalid_ratio: f64,
    /// Write to this file instead of standard output
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Reads a schema file: a JSON array of field definitions, or a GET entity-schema response
/// (`{"objectTypeToSelectedFields": {TYPE: [...]}}`), of which `ty`'s fields are taken.
fn load_schema(path: &Path, ty: ObjectType) -> Result<Schema, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("cannot read schema {}: {e}", path.display())))?;
    let listed = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => map.get("objectTypeToSelectedFields").map(|types| {
            let fields = types
                .get(ty.as_str())
                .cloned()
                .unwrap_or(Value::Array(vec![]));
            serde_json::to_vec(&fields).unwrap_or_default()
        }),
        _ => None,
    };
    let fields = parse_schema_upload(listed.as_deref().unwrap_or(&bytes)).map_err(|errors| {
        CliError::Usage(format!(
            "invalid schema {}: {}",
            path.display(),
            errors.join("; ")
        ))
    })?;
    Ok(Schema::new(fields))
}

fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

pub async fn validate(args: ValidateArgs) -> Result<u8, CliError> {
    let file = std::fs::File::open(&args.file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let schema = match &args.schema {
        Some(path) => load_schema(path, args.object_type)?,
        None => Schema::empty(),
    };
    let json = args.json;
    let ty = args.object_type;
    let name = args.file.display().to_string();
    let result = tokio::task::spawn_blocking(move || run_validation(file, len, ty, schema, json))
        .await
        .map_err(|e| CliError::Failed(format!("validation crashed: {e}")))?;
    match result {
        Ok(report) => {
            if !json {
                let plural = |n: u64| if n == 1 { "line" } else { "lines" };
                crate::outln!(
                    "{name}: {} {} valid, {} {} failed",
                    report.success_count,
                    plural(report.success_count),
                    report.error_count,
                    plural(report.error_count)
                );
            }
            Ok(if report.is_success() {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        Err(e) if is_broken_pipe(&e) => Ok(exit::OK),
        Err(e) => Err(CliError::Failed(format!("cannot write the output: {e}"))),
    }
}

/// Streams the file through the validator and prints each error as it comes: memory stays
/// bounded whatever the number of errors.
fn run_validation(
    file: std::fs::File,
    len: u64,
    ty: ObjectType,
    schema: Schema,
    json: bool,
) -> io::Result<Report> {
    let bar = if stderr_is_terminal() {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("validating [{bar:30}] {bytes}/{total_bytes} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut report = Report::new(false);
    if json {
        out.write_all(b"{\"errors\":[")?;
    }
    for item in FileValidator::new(bar.wrap_read(file), ty, schema) {
        match item {
            Ok(outcome) => {
                if let Err(description) = &outcome.result {
                    print_error(
                        &mut out,
                        json,
                        report.error_count > 0,
                        outcome.line,
                        description,
                    )?;
                }
                report.add(&outcome);
            }
            Err(e) => {
                let description = format!("The file could not be read: {e}");
                print_error(&mut out, json, report.error_count > 0, 0, &description)?;
                report.add_error(0, description);
            }
        }
    }
    bar.finish_and_clear();
    if json {
        write!(
            out,
            "],\"totalSuccessCount\":{},\"totalErrorCount\":{}}}",
            report.success_count, report.error_count
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(report)
}

fn print_error(
    out: &mut impl Write,
    json: bool,
    after_another: bool,
    line: u64,
    description: &str,
) -> io::Result<()> {
    if !json {
        return writeln!(out, "line {line}: {description}");
    }
    if after_another {
        out.write_all(b",")?;
    }
    serde_json::to_writer(
        &mut *out,
        &LineError {
            line,
            description: description.to_string(),
            ..Default::default()
        },
    )?;
    Ok(())
}

pub async fn gen(args: GenArgs) -> Result<u8, CliError> {
    if !(0.0..=1.0).contains(&args.invalid_ratio) {
        return Err(CliError::Usage(format!(
            "--invalid-ratio must be between 0 and 1, not {}",
            args.invalid_ratio
        )));
    }
    let result = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let write = |out: &mut dyn Write| {
            let mut out = BufWriter::with_capacity(256 * 1024, out);
            let (ty, count, seed, ratio) =
                (args.object_type, args.count, args.seed, args.invalid_ratio);
            intake_model::gen::write_lines(&mut out, ty, count, seed, ratio)?;
            out.flush()
        };
        match &args.output {
            Some(path) => {
                let mut file = std::fs::File::create(path)?;
                write(&mut file)?;
                file.sync_all()
            }
            None => write(&mut io::stdout().lock()),
        }
    })
    .await
    .map_err(|e| CliError::Failed(format!("generation crashed: {e}")))?;
    match result {
        Ok(()) => Ok(exit::OK),
        Err(e) if is_broken_pipe(&e) => Ok(exit::OK),
        Err(e) => Err(CliError::Failed(format!("cannot write: {e}"))),
    }
}
