//! Feeds arbitrary bytes, as an LDJSON file, to the streaming validator of every object
//! type, with and without a custom-field schema, and checks the reader's invariants.
#![no_main]

use intake_model::{FieldDef, FieldType, FileValidator, ObjectType, Report, Schema};
use libfuzzer_sys::fuzz_target;

fn schema() -> Schema {
    let def = |name: &str, t: FieldType| FieldDef {
        unique_name: name.to_owned(),
        label: name.to_owned(),
        field_type: t,
        last_modified: None,
        is_deleted: false,
        reference_to: None,
        ordered_value_list: (t == FieldType::Picklist).then(|| vec!["a".to_owned()]),
    };
    Schema::new([
        def("d", FieldType::Date),
        def("dt", FieldType::DateTime),
        def("n", FieldType::Number),
        def("p", FieldType::Percent),
        def("u", FieldType::Url),
        def("e", FieldType::EmailAddress),
        def("k", FieldType::Picklist),
        def("sa", FieldType::StringArray),
        def("b", FieldType::Boolean),
    ])
}

fuzz_target!(|data: &[u8]| {
    let physical_lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for ty in ObjectType::ALL {
        for schema in [Schema::empty(), schema()] {
            let mut report = Report::new(false);
            let mut last = 0;
            for outcome in FileValidator::new(data, ty, schema) {
                let outcome = outcome.expect("reading a slice cannot fail");
                assert!(outcome.line > last && outcome.line <= physical_lines);
                last = outcome.line;
                if let Ok(rec) = &outcome.result {
                    // The body is a JSON object and STAGE records are never deleted.
                    let body: serde_json::Value =
                        serde_json::from_str(&rec.body).expect("body is JSON");
                    assert!(body.is_object());
                    assert!(!(ty == ObjectType::Stage && rec.deleted));
                    assert_eq!(body["objectId"].as_str(), Some(rec.object_id.as_str()));
                }
                report.add(&outcome);
            }
            assert!(report.first_errors.len() <= Report::LISTED_ERRORS);
        }
    }
});
