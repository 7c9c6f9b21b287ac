//! Custom fields: the entity-schema field definitions, their upload rules, and the
//! full-replacement plan of a schema upload.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{reference_to, FieldType, ObjectType};

/// One custom field definition, as uploaded to and listed by `/v2/crm/entity-schema`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = GenericSchemaFieldRequest)]
pub struct FieldDef {
    pub unique_name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub is_deleted: bool,
    /// The target of a REFERENCE field. BUSINESS_USER is written `USER` on the wire.
    #[serde(default, with = "reference_to")]
    #[schema(value_type = Option<String>, example = "ACCOUNT")]
    pub reference_to: Option<ObjectType>,
    #[serde(default)]
    pub ordered_value_list: Option<Vec<String>>,
}

/// The active custom fields of one object type.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    fields: Vec<FieldDef>,
    index: HashMap<String, usize>,
}

impl Schema {
    /// Builds a schema from definitions; fields with `is_deleted` are ignored. If a name
    /// appears twice, the later definition wins.
    pub fn new(fields: impl IntoIterator<Item = FieldDef>) -> Schema {
        let mut s = Schema::default();
        for f in fields.into_iter().filter(|f| !f.is_deleted) {
            match s.index.get(&f.unique_name) {
                Some(&i) => s.fields[i] = f,
                None => {
                    s.index.insert(f.unique_name.clone(), s.fields.len());
                    s.fields.push(f);
                }
            }
        }
        s
    }

    /// A schema without custom fields (every unknown key is stored as given).
    pub fn empty() -> Schema {
        Schema::default()
    }

    /// The active field called `unique_name`.
    pub fn get(&self, unique_name: &str) -> Option<&FieldDef> {
        if self.fields.is_empty() {
            return None;
        }
        self.index.get(unique_name).map(|&i| &self.fields[i])
    }

    /// The active fields, in definition order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

const TYPE_LIST: &str = "DATE, DATETIME, NUMBER, PERCENT, CURRENCY, ID, URL, STRING, BOOLEAN, PHONENUMBER, EMAILADDRESS, PICKLIST, REFERENCE, STRINGARRAY";

/// Parses and checks the body of `POST /v2/crm/entity-schema`: a JSON array of field
/// definitions. On failure, every problem found is listed, each naming the field.
///
/// Rules: `uniqueName`, `label` (non-empty strings) and `type` (one of the 14 type names,
/// case-sensitive) are mandatory, also for a field sent with `isDeleted: true`;
/// `lastModified` is an optional string; `isDeleted` an optional boolean (null = false);
/// REFERENCE needs `referenceTo` in ACCOUNT, CONTACT, DEAL, LEAD, USER (BUSINESS_USER is
/// accepted as a synonym of USER); PICKLIST needs a non-empty `orderedValueList` of strings.
/// `referenceTo` and `orderedValueList` are ignored (dropped) for the other types. A
/// `uniqueName` may appear only once per body. Unknown keys are ignored.
pub fn parse_schema_upload(body: &[u8]) -> Result<Vec<FieldDef>, Vec<String>> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(vec![format!("Body is not valid JSON: {e}")]),
    };
    let Value::Array(items) = value else {
        return Err(vec![
            "Body must be a JSON array of field definitions".to_owned()
        ]);
    };
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            errors.push(format!(
                "Element {} of the body is not a JSON object",
                i + 1
            ));
            continue;
        };
        let name = match obj.get("uniqueName") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) | Some(Value::Null) | None => {
                errors.push(format!(
                    "Mandatory field [uniqueName] is missing or empty (element {})",
                    i + 1
                ));
                None
            }
            Some(_) => {
                errors.push(format!(
                    "Field [uniqueName] must be a string (element {})",
                    i + 1
                ));
                None
            }
        };
        let who = match &name {
            Some(n) => format!("field [{n}]"),
            None => format!("element {}", i + 1),
        };
        if let Some(n) = &name {
            if !seen.insert(n.clone()) {
                errors.push(format!(
                    "Field [uniqueName] value [{n}] appears more than once in the body"
                ));
            }
        }
        let label = match obj.get("label") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) | Some(Value::Null) | None => {
                errors.push(format!(
                    "Mandatory field [label] is missing or empty ({who})"
                ));
                None
            }
            Some(_) => {
                errors.push(format!("Field [label] must be a string ({who})"));
                None
            }
        };
        let of = match &name {
            Some(n) => format!("[{n}]"),
            None => format!("element {}", i + 1),
        };
        let field_type = match obj.get("type") {
            None | Some(Value::Null) => {
                errors.push(format!(
                    "Mandatory field [type] is missing or empty ({who})"
                ));
                None
            }
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(format!(
                    "Mandatory field [type] is missing or empty ({who})"
                ));
                None
            }
            Some(Value::String(s)) => match FieldType::parse(s) {
                Some(t) => Some(t),
                None => {
                    errors.push(format!("Field [type] of {of} must be one of {TYPE_LIST}"));
                    None
                }
            },
            Some(_) => {
                errors.push(format!("Field [type] of {of} must be one of {TYPE_LIST}"));
                None
            }
        };
        let last_modified = match obj.get("lastModified") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(format!("Field [lastModified] of {of} must be a string"));
                None
            }
        };
        let is_deleted = match obj.get("isDeleted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(format!("Field [isDeleted] of {of} must be a boolean"));
                false
            }
        };
        let mut reference = None;
        if field_type == Some(FieldType::Reference) {
            match obj
                .get("referenceTo")
                .and_then(Value::as_str)
                .and_then(reference_to::parse)
            {
                Some(t) => reference = Some(t),
                None => errors.push(format!(
                    "Field [referenceTo] of {of} is required for type REFERENCE and must be one of ACCOUNT, CONTACT, DEAL, LEAD, USER"
                )),
            }
        }
        let mut values = None;
        if field_type == Some(FieldType::Picklist) {
            match obj.get("orderedValueList") {
                Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                    values = Some(
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect(),
                    );
                }
                Some(Value::Array(a)) if !a.is_empty() => errors.push(format!(
                    "Field [orderedValueList] of {of} must be a list of strings"
                )),
                _ => errors.push(format!(
                    "Field [orderedValueList] of {of} must be a non-empty list for type PICKLIST"
                )),
            }
        }
        if let (Some(unique_name), Some(label), Some(field_type)) = (name, label, field_type) {
            out.push(FieldDef {
                unique_name,
                label,
                field_type,
                last_modified,
                is_deleted,
                reference_to: reference,
                ordered_value_list: values,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What a schema upload changes.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaPlan {
    /// The new active schema: every non-deleted field of the upload, in upload order.
    pub keep: Vec<FieldDef>,
    /// Fields whose stored values must be removed from every stored object: every field
    /// sent with `isDeleted: true`, and every field whose type changed. No duplicates.
    pub drop_values_of: Vec<String>,
}

/// Applies the full-replacement rule: every field of `existing` (the active schema)
/// must appear in `upload`, possibly with `isDeleted: true`. A field whose type changes is
/// created anew (its stored values are dropped); a field sent with `isDeleted: true` is
/// removed with its values (also when it was not active before, since values of undefined
/// keys are stored as given).
pub fn plan_schema_replacement(
    existing: &[FieldDef],
    upload: Vec<FieldDef>,
) -> Result<SchemaPlan, String> {
    let uploaded: HashSet<&str> = upload.iter().map(|f| f.unique_name.as_str()).collect();
    let missing: Vec<&str> = existing
        .iter()
        .filter(|f| !f.is_deleted && !uploaded.contains(f.unique_name.as_str()))
        .map(|f| f.unique_name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "Schema upload is missing previously defined fields [{}]: send every field again, or send it with isDeleted: true",
            missing.join(", ")
        ));
    }
    let old: HashMap<&str, FieldType> = existing
        .iter()
        .filter(|f| !f.is_deleted)
        .map(|f| (f.unique_name.as_str(), f.field_type))
        .collect();
    let mut drop_values_of: Vec<String> = Vec::new();
    let mut keep = Vec::with_capacity(upload.len());
    for f in upload {
        let changed = old
            .get(f.unique_name.as_str())
            .is_some_and(|t| *t != f.field_type);
        if (f.is_deleted || changed) && !drop_values_of.contains(&f.unique_name) {
            drop_values_of.push(f.unique_name.clone());
        }
        if !f.is_deleted {
            keep.push(f);
        }
    }
    Ok(SchemaPlan {
        keep,
        drop_values_of,
    })
}
