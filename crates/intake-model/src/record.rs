//! Validation of one LDJSON line into a record ready to store.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::formats;
use crate::schema::Schema;
use crate::types::{FieldType, ObjectType};

/// A line that passed validation, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidRecord {
    pub object_id: String,
    /// modifiedDate as unix seconds (UTC). None only for a STAGE line without modifiedDate
    /// (the server then uses upload time).
    pub modified: Option<i64>,
    /// true => the record is deleted (GET answers null). Never true for STAGE: a STAGE with
    /// isDeleted:true is stored with isActive:false and deleted=false. BUSINESS_USER with
    /// isDeleted:true => deleted=true.
    pub deleted: bool,
    /// The normalized JSON object as text; exactly what GET /v2/crm/entities returns for the
    /// record. See [`validate_record`] for its shape.
    pub body: String,
}

// ---------------------------------------------------------------------------------------
// A borrowing, order-preserving parse of one JSON object.

/// A value of a top-level key. Strings without escapes borrow from the line; numbers are
/// their text in the line, kept exactly as sent (docs/API.md: "stored as given"): a 40-digit
/// integer or `1.50` comes back as it went in, not as the nearest `f64`.
#[derive(Debug)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(Cow<'a, str>),
    /// Nested arrays and objects are rare (domains, STRINGARRAY, ad-hoc custom fields).
    Json(Box<Value>),
}

impl<'a> Val<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Num(_) => "a number",
            Val::Str(_) => "a string",
            Val::Json(j) if j.is_array() => "an array",
            Val::Json(_) => "an object",
        }
    }

    /// The value whose text serde_json has already checked to be one JSON value.
    fn from_raw<E: de::Error>(raw: &'a str) -> Result<Val<'a>, E> {
        let json = |raw: &str| serde_json::from_str::<Value>(raw).map_err(E::custom);
        Ok(match raw.as_bytes().first() {
            Some(b'n') => Val::Null,
            Some(b't') => Val::Bool(true),
            Some(b'f') => Val::Bool(false),
            // Without a backslash the text between the quotes is the string itself.
            Some(b'"') if !raw.contains('\\') => Val::Str(Cow::Borrowed(&raw[1..raw.len() - 1])),
            Some(b'"') => Val::Str(Cow::Owned(
                serde_json::from_str::<String>(raw).map_err(E::custom)?,
            )),
            Some(b'-' | b'0'..=b'9') => {
                // serde_json refuses numbers out of f64's range; so do we.
                if !raw.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(E::custom("number out of range"));
                }
                Val::Num(raw)
            }
            _ => Val::Json(Box::new(json(raw)?)),
        })
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The top-level object of a line, keys in line order (duplicates kept, checked later).
struct Fields<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut v = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some(k) = map.next_key_seed(KeySeed)? {
            let raw: &'de RawValue = map.next_value()?;
            v.push((k, Val::from_raw(raw.get())?));
        }
        Ok(Fields(v))
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

fn parse_line(line: &[u8]) -> Result<Fields<'_>, String> {
    let s = std::str::from_utf8(line).map_err(|_| "Line is not valid UTF-8".to_owned())?;
    let first = s
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(b'{') {
        return Err(match serde_json::from_str::<de::IgnoredAny>(s) {
            Ok(_) => "Line is not a JSON object".to_owned(),
            Err(e) => format!("Line is not valid JSON: {e}"),
        });
    }
    serde_json::from_str::<Fields<'_>>(s).map_err(|e| format!("Line is not valid JSON: {e}"))
}

// ---------------------------------------------------------------------------------------
// JSON output.

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

struct Body {
    out: String,
}

impl Body {
    fn with_capacity(n: usize) -> Body {
        let mut out = String::with_capacity(n);
        out.push('{');
        Body { out }
    }
    fn key(&mut self, k: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_json_str(&mut self.out, k);
        self.out.push(':');
    }
    /// A key of the line: one that borrows from it needs no escaping (see `val_field`).
    #[allow(clippy::ptr_arg)] // whether the key borrows from the line is the point
    fn line_key(&mut self, k: &Cow<'_, str>) {
        match k {
            Cow::Borrowed(k) => {
                if self.out.len() > 1 {
                    self.out.push(',');
                }
                self.out.push('"');
                self.out.push_str(k);
                self.out.push_str("\":");
            }
            Cow::Owned(k) => self.key(k),
        }
    }
    fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        push_json_str(&mut self.out, v);
    }
    fn raw_field(&mut self, k: &str, raw: &str) {
        self.key(k);
        self.out.push_str(raw);
    }
    #[allow(clippy::ptr_arg)] // see line_key
    fn val_field(&mut self, k: &Cow<'_, str>, v: &Val<'_>) {
        self.line_key(k);
        match v {
            Val::Null => self.out.push_str("null"),
            Val::Bool(true) => self.out.push_str("true"),
            Val::Bool(false) => self.out.push_str("false"),
            Val::Num(n) => self.out.push_str(n),
            // A string that borrows from the line had no escapes in it, and JSON forbids raw
            // control characters, quotes and backslashes: it needs no escaping.
            Val::Str(Cow::Borrowed(s)) => {
                self.out.push('"');
                self.out.push_str(s);
                self.out.push('"');
            }
            Val::Str(s) => push_json_str(&mut self.out, s),
            Val::Json(j) => self
                .out
                .push_str(&serde_json::to_string(&**j).unwrap_or_else(|_| "null".to_owned())),
        }
    }
    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

// ---------------------------------------------------------------------------------------
// Rules.

/// The rule of a standard field of some type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    ObjectId,
    ModifiedDate,
    IsDeleted,
    Url,
    Email,
    Text,
    Domains,
    Status,
    Amount,
    CloseDate,
    CreatedDate,
    IsActive,
    SortOrder,
}

fn standard_rule(ty: ObjectType, key: &str) -> Option<Rule> {
    use ObjectType::*;
    Some(match key {
        "objectId" => Rule::ObjectId,
        "modifiedDate" => Rule::ModifiedDate,
        "isDeleted" => Rule::IsDeleted,
        "url" => Rule::Url,
        "emailAddress" if matches!(ty, BusinessUser | Contact | Lead) => Rule::Email,
        "name" if matches!(ty, Account | Deal | Stage) => Rule::Text,
        "domains" if ty == Account => Rule::Domains,
        "accountId" if matches!(ty, Contact | Deal) => Rule::Text,
        "firstName" | "lastName" | "title" | "phoneNumber" if matches!(ty, Contact | Lead) => {
            Rule::Text
        }
        "ownerId" | "stage" if ty == Deal => Rule::Text,
        "createdDate" if ty == Deal => Rule::CreatedDate,
        "closeDate" if ty == Deal => Rule::CloseDate,
        "status" if ty == Deal => Rule::Status,
        "amount" if ty == Deal => Rule::Amount,
        "convertedToDealId" | "convertedToContactId" | "convertedToAccountId" if ty == Lead => {
            Rule::Text
        }
        "isActive" if ty == Stage => Rule::IsActive,
        "sortOrder" if ty == Stage => Rule::SortOrder,
        _ => return None,
    })
}

pub(crate) const MSG_OBJECT_ID: &str = "Field [objectId] must be at most 64 characters of letters, digits, '-' and '_', or a valid email address";

fn mandatory(field: &str) -> String {
    format!("Mandatory field [{field}] is missing or empty")
}

fn datetime_msg(field: &str) -> String {
    format!("Field [{field}] must be an ISO-8601 datetime without milliseconds")
}

fn check_duplicate_keys(fields: &[(Cow<'_, str>, Val<'_>)]) -> Result<(), String> {
    let dup = |k: &str| format!("Field [{k}] appears more than once in the line");
    if fields.len() <= 32 {
        for (i, (k, _)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(p, _)| p == k) {
                return Err(dup(k));
            }
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity(fields.len());
        for (k, _) in fields {
            if !seen.insert(k.as_ref()) {
                return Err(dup(k));
            }
        }
    }
    Ok(())
}

fn as_text<'v>(key: &str, v: &'v Val<'_>) -> Result<&'v str, String> {
    match v {
        Val::Str(s) => Ok(s),
        other => Err(format!(
            "Field [{key}] must be a string, not {}",
            other.kind()
        )),
    }
}

fn check_custom(key: &str, def: &crate::FieldDef, v: &Val<'_>) -> Result<(), String> {
    let t = def.field_type;
    let bad = |what: &str| {
        Err(format!(
            "Field [{key}] must be {what} (custom field of type {t})"
        ))
    };
    match t {
        FieldType::Date => match v {
            Val::Str(s) if formats::parse_date(s).is_some() => Ok(()),
            _ => bad("a date YYYY-MM-DD"),
        },
        FieldType::DateTime => match v {
            Val::Str(s) if formats::parse_datetime(s).is_some() => Ok(()),
            _ => bad("an ISO-8601 datetime without milliseconds"),
        },
        FieldType::Number | FieldType::Currency => match v {
            Val::Num(_) => Ok(()),
            _ => bad("a number"),
        },
        FieldType::Percent => match v {
            Val::Num(n) if n.parse::<f64>().is_ok_and(|f| (0.0..=100.0).contains(&f)) => Ok(()),
            _ => bad("a number from 0 to 100"),
        },
        FieldType::Boolean => match v {
            Val::Bool(_) => Ok(()),
            _ => bad("a boolean"),
        },
        FieldType::Url => match v {
            Val::Str(s) if formats::is_http_url(s) => Ok(()),
            _ => bad("an absolute http(s) URL"),
        },
        FieldType::EmailAddress => match v {
            Val::Str(s) if formats::is_email(s) => Ok(()),
            _ => bad("a valid email address"),
        },
        FieldType::Picklist => {
            let values = def.ordered_value_list.as_deref().unwrap_or(&[]);
            match v {
                Val::Str(s) if values.iter().any(|x| x == s) => Ok(()),
                _ => bad(&format!("one of [{}]", values.join(", "))),
            }
        }
        FieldType::StringArray => match v {
            Val::Json(j) if j.as_array().is_some_and(|a| a.iter().all(Value::is_string)) => Ok(()),
            _ => bad("an array of strings"),
        },
        FieldType::Id | FieldType::String | FieldType::PhoneNumber | FieldType::Reference => {
            match v {
                Val::Str(_) => Ok(()),
                _ => bad("a string"),
            }
        }
    }
}

/// Validates one physical line (without its line ending) as an object of type `ty`.
///
/// Rules are those of docs/API.md (the repository root). Decisions recorded here:
/// - `null` counts as absent everywhere and null-valued keys are dropped from the body.
/// - An empty string satisfies no mandatory field, and is not a valid value for a field
///   with a format (url, email, dates, domains); plain string fields may be empty.
/// - A key that appears twice in the line is an error.
/// - A standard field of the type wins over a custom field of the same name.
/// - Errors are reported one per line, the first found in this order: JSON syntax,
///   duplicate keys, `objectId`, `modifiedDate`, the type's other mandatory fields,
///   `isDeleted`, then every other field in line order.
///
/// The body is the line's object with null-valued keys dropped, keys in line order,
/// `closeDate` reduced to `YYYY-MM-DD`, a STAGE with `isDeleted: true` forced to
/// `isActive: false`, and then the missing defaults appended in this order: `isDeleted`
/// false (every type); ACCOUNT `name`; DEAL `name`, `status` "OPEN", `amount` 0; STAGE
/// `isActive` true, `sortOrder` 1. Strings are re-escaped the way serde_json writes them.
///
/// An error text quotes keys and values of the line as they are, except that control
/// characters (U+0000..U+001F, U+007F..U+009F) are written as `\uXXXX`: a text with a NUL
/// in it could not be stored by PostgreSQL, and a terminal would act on the others.
pub fn validate_record(
    ty: ObjectType,
    schema: &Schema,
    line: &[u8],
) -> Result<ValidRecord, String> {
    validate_line(ty, schema, line).map_err(|(description, _)| description)
}

/// [`validate_record`], and for a line that fails, its readable objectId beside the error:
/// the value of its first `objectId` key when that is a valid objectId (a string of the
/// allowed form), else `None` (not JSON, no such key, or a value that is no objectId).
pub fn validate_line(
    ty: ObjectType,
    schema: &Schema,
    line: &[u8],
) -> Result<ValidRecord, (String, Option<String>)> {
    let Fields(fields) = parse_line(line).map_err(|e| (formats::escape_controls(e), None))?;
    check_fields(ty, schema, &fields, line.len()).map_err(|e| {
        let object_id = fields.iter().find_map(|(k, v)| match v {
            Val::Str(s) if k == "objectId" && formats::is_object_id(s) => Some(s.to_string()),
            _ => None,
        });
        (formats::escape_controls(e), object_id)
    })
}

fn check_fields(
    ty: ObjectType,
    schema: &Schema,
    fields: &[(Cow<'_, str>, Val<'_>)],
    line_len: usize,
) -> Result<ValidRecord, String> {
    check_duplicate_keys(fields)?;

    // Positions of the keys the line-level rules need (null values count as absent).
    let (mut oid, mut mdate, mut del, mut email, mut name) = (None, None, None, None, None);
    for (k, v) in fields {
        if matches!(v, Val::Null) {
            continue;
        }
        match k.as_ref() {
            "objectId" => oid = Some(v),
            "modifiedDate" => mdate = Some(v),
            "isDeleted" => del = Some(v),
            "emailAddress" => email = Some(v),
            "name" => name = Some(v),
            _ => {}
        }
    }

    let object_id = match oid {
        None => return Err(mandatory("objectId")),
        Some(Val::Str(s)) if s.is_empty() => return Err(mandatory("objectId")),
        Some(Val::Str(s)) if formats::is_object_id(s) => s.as_ref(),
        Some(_) => return Err(MSG_OBJECT_ID.to_owned()),
    };

    let modified = match mdate {
        None if ty == ObjectType::Stage => None,
        None => return Err(mandatory("modifiedDate")),
        Some(Val::Str(s)) if s.is_empty() && ty != ObjectType::Stage => {
            return Err(mandatory("modifiedDate"))
        }
        Some(Val::Str(s)) => match formats::parse_datetime(s) {
            Some(d) => Some(d.unix_timestamp()),
            None => return Err(datetime_msg("modifiedDate")),
        },
        Some(_) => return Err(datetime_msg("modifiedDate")),
    };

    // Mandatory fields of the type (presence only; their format is checked below).
    let deleted_flag = matches!(del, Some(Val::Bool(true)));
    let required = match ty {
        ObjectType::BusinessUser if !deleted_flag => Some(("emailAddress", email)),
        ObjectType::Stage => Some(("name", name)),
        _ => None,
    };
    if let Some((f, v)) = required {
        match v {
            None => return Err(mandatory(f)),
            Some(Val::Str(s)) if s.is_empty() => return Err(mandatory(f)),
            _ => {}
        }
    }

    let is_deleted = match del {
        None => None,
        Some(Val::Bool(b)) => Some(*b),
        Some(_) => return Err("Field [isDeleted] must be a boolean".to_owned()),
    };

    let mut body = Body::with_capacity(line_len + 48);
    let mut have_name = false;
    let mut have_status = false;
    let mut have_amount = false;
    let mut have_active = false;
    let mut have_sort = false;

    for (line_key, v) in fields {
        let key: &str = line_key;
        if matches!(v, Val::Null) {
            continue;
        }
        match standard_rule(ty, key) {
            Some(Rule::ObjectId | Rule::ModifiedDate | Rule::IsDeleted) => {}
            Some(Rule::Url) => match v {
                Val::Str(s) if formats::is_http_url(s) => {}
                _ => return Err("Field [url] must be an absolute http(s) URL".to_owned()),
            },
            Some(Rule::Email) => match v {
                Val::Str(s) if formats::is_email(s) => {}
                _ => return Err(format!("Field [{key}] must be a valid email address")),
            },
            Some(Rule::Text) => {
                as_text(key, v)?;
                have_name |= key == "name";
            }
            Some(Rule::Domains) => {
                let ok = match v {
                    Val::Json(j) if j.is_array() => {
                        let a = j.as_array().map_or(&[][..], Vec::as_slice);
                        for d in a {
                            match d {
                                Value::String(s) if formats::is_domain(s) => {}
                                Value::String(s) => {
                                    return Err(format!(
                                        "Field [domains] must be an array of domain names: [{s}] is not a domain name"
                                    ))
                                }
                                _ => {
                                    return Err(
                                        "Field [domains] must be an array of domain names (strings)"
                                            .to_owned(),
                                    )
                                }
                            }
                        }
                        true
                    }
                    _ => false,
                };
                if !ok {
                    return Err("Field [domains] must be an array of domain names".to_owned());
                }
            }
            Some(Rule::Status) => {
                match v {
                    Val::Str(s) if matches!(s.as_ref(), "WON" | "LOST" | "OPEN") => {}
                    _ => return Err("Field [status] must be one of WON, LOST, OPEN".to_owned()),
                }
                have_status = true;
            }
            Some(Rule::Amount) => {
                if !matches!(v, Val::Num(_)) {
                    return Err("Field [amount] must be a number".to_owned());
                }
                have_amount = true;
            }
            Some(Rule::CreatedDate) => match v {
                Val::Str(s) if formats::parse_datetime(s).is_some() => {}
                _ => return Err(datetime_msg("createdDate")),
            },
            Some(Rule::CloseDate) => {
                let msg = "Field [closeDate] must be a date YYYY-MM-DD or an ISO-8601 datetime without milliseconds";
                let Val::Str(s) = v else {
                    return Err(msg.to_owned());
                };
                if formats::parse_date(s).is_none() && formats::parse_datetime(s).is_none() {
                    return Err(msg.to_owned());
                }
                body.str_field(key, &s[..10]);
                continue;
            }
            Some(Rule::IsActive) => {
                if !matches!(v, Val::Bool(_)) {
                    return Err("Field [isActive] must be a boolean".to_owned());
                }
                have_active = true;
                if deleted_flag {
                    body.raw_field(key, "false");
                    continue;
                }
            }
            Some(Rule::SortOrder) => {
                match v {
                    Val::Num(n) if n.parse::<i64>().is_ok_and(|i| i >= 1) => {}
                    _ => return Err("Field [sortOrder] must be an integer from 1".to_owned()),
                }
                have_sort = true;
            }
            None => {
                if let Some(def) = schema.get(key) {
                    check_custom(key, def, v)?;
                }
            }
        }
        body.val_field(line_key, v);
    }

    if is_deleted.is_none() {
        body.raw_field("isDeleted", "false");
    }
    match ty {
        ObjectType::Account | ObjectType::Deal if !have_name => {
            let prefix = if ty == ObjectType::Account {
                "Account_#"
            } else {
                "Deal_#"
            };
            body.str_field("name", &format!("{prefix}{object_id}"));
        }
        _ => {}
    }
    if ty == ObjectType::Deal {
        if !have_status {
            body.str_field("status", "OPEN");
        }
        if !have_amount {
            body.raw_field("amount", "0");
        }
    }
    if ty == ObjectType::Stage {
        if !have_active {
            body.raw_field("isActive", if deleted_flag { "false" } else { "true" });
        }
        if !have_sort {
            body.raw_field("sortOrder", "1");
        }
    }

    Ok(ValidRecord {
        object_id: object_id.to_owned(),
        modified,
        deleted: deleted_flag && ty != ObjectType::Stage,
        body: body.finish(),
    })
}
