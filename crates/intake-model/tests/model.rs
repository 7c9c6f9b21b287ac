//! Intake's model: every rule and default of docs/API.md, the seed page's examples, the
//! streaming reader, schemas, the report, the generator, property tests and the fuzz corpus.

use std::io::{self, Read};

use intake_model::*;
use proptest::prelude::*;
use serde_json::{json, Value};

// ------------------------------------------------------------------------------------------
// helpers

fn check(ty: ObjectType, line: &str) -> Result<ValidRecord, String> {
    validate_record(ty, &Schema::empty(), line.as_bytes())
}

#[track_caller]
fn ok(ty: ObjectType, line: &str) -> ValidRecord {
    match check(ty, line) {
        Ok(r) => r,
        Err(e) => panic!("{ty} line rejected: {e}\n{line}"),
    }
}

#[track_caller]
fn err(ty: ObjectType, line: &str) -> String {
    match check(ty, line) {
        Ok(r) => panic!("{ty} line accepted: {}\n{line}", r.body),
        Err(e) => e,
    }
}

#[track_caller]
fn body(ty: ObjectType, line: &str) -> Value {
    serde_json::from_str(&ok(ty, line).body).expect("body is JSON")
}

fn outcomes(data: &[u8], ty: ObjectType) -> Vec<LineOutcome> {
    FileValidator::new(data, ty, Schema::empty())
        .map(|o| o.expect("in-memory read"))
        .collect()
}

fn summary(data: &[u8], ty: ObjectType) -> Vec<(u64, Result<String, String>)> {
    outcomes(data, ty)
        .into_iter()
        .map(|o| (o.line, o.result.map(|r| r.object_id)))
        .collect()
}

const T0: &str = "2019-01-03T23:45:57+01:00";
const T0_UNIX: i64 = 1_546_555_557;

fn line(ty: ObjectType, extra: &str) -> String {
    let base = match ty {
        ObjectType::Stage => r#"{"objectId":"s1","name":"Discovery""#.to_owned(),
        ObjectType::BusinessUser => {
            format!(r#"{{"objectId":"u1","modifiedDate":"{T0}","emailAddress":"john.doe@acme.com""#)
        }
        _ => format!(r#"{{"objectId":"x1","modifiedDate":"{T0}""#),
    };
    if extra.is_empty() {
        format!("{base}}}")
    } else {
        format!("{base},{extra}}}")
    }
}

fn field(unique_name: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        unique_name: unique_name.to_owned(),
        label: unique_name.to_uppercase(),
        field_type,
        last_modified: None,
        is_deleted: false,
        reference_to: None,
        ordered_value_list: None,
    }
}

// ------------------------------------------------------------------------------------------
// object and field types

#[test]
fn object_types_parse_case_sensitively() {
    let names = [
        "ACCOUNT",
        "CONTACT",
        "DEAL",
        "LEAD",
        "BUSINESS_USER",
        "STAGE",
    ];
    for (i, (ty, name)) in ObjectType::ALL.iter().zip(names).enumerate() {
        assert_eq!(ObjectType::parse(name), Some(*ty));
        assert_eq!(ty.as_str(), name);
        assert_eq!(ty.to_string(), name);
        assert_eq!(name.parse::<ObjectType>().unwrap(), *ty);
        assert_eq!(ty.code(), i as i16);
        assert_eq!(ObjectType::from_code(i as i16), Some(*ty));
        assert_eq!(ty.has_schema(), i < 4);
        assert_eq!(serde_json::to_string(ty).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<ObjectType>(&format!("\"{name}\"")).unwrap(),
            *ty
        );
        assert_eq!(ObjectType::parse(&name.to_lowercase()), None);
    }
    for bad in ["", "USER", "Account", "OPPORTUNITY", " DEAL"] {
        assert_eq!(ObjectType::parse(bad), None, "{bad}");
        assert!(bad.parse::<ObjectType>().is_err());
        assert!(serde_json::from_str::<ObjectType>(&format!("\"{bad}\"")).is_err());
    }
    assert_eq!(ObjectType::from_code(6), None);
    assert_eq!(ObjectType::from_code(-1), None);
    assert!("deal"
        .parse::<ObjectType>()
        .unwrap_err()
        .to_string()
        .contains("ACCOUNT, CONTACT, DEAL, LEAD, BUSINESS_USER, STAGE"));
}

#[test]
fn field_types_parse_case_sensitively() {
    let names = [
        "DATE",
        "DATETIME",
        "NUMBER",
        "PERCENT",
        "CURRENCY",
        "ID",
        "URL",
        "STRING",
        "BOOLEAN",
        "PHONENUMBER",
        "EMAILADDRESS",
        "PICKLIST",
        "REFERENCE",
        "STRINGARRAY",
    ];
    for name in names {
        let t = FieldType::parse(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(t.as_str(), name);
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<FieldType>(&format!("\"{name}\"")).unwrap(),
            t
        );
        assert_eq!(FieldType::parse(&name.to_lowercase()), None);
    }
    assert_eq!(FieldType::parse("Date"), None);
    assert_eq!(FieldType::parse("TEXT"), None);
}

// ------------------------------------------------------------------------------------------
// the seed page's examples

#[test]
fn seed_business_users() {
    let r = ok(
        ObjectType::BusinessUser,
        r#"{"objectId": "user1_Id_In_The_CRM", "emailAddress": "john.doe@acme.com", "modifiedDate": "2019-01-03T23:45:57+01:00"}"#,
    );
    assert_eq!(r.object_id, "user1_Id_In_The_CRM");
    assert_eq!(r.modified, Some(T0_UNIX));
    assert!(!r.deleted);
    assert_eq!(
        r.body,
        r#"{"objectId":"user1_Id_In_The_CRM","emailAddress":"john.doe@acme.com","modifiedDate":"2019-01-03T23:45:57+01:00","isDeleted":false}"#
    );
    let r = ok(
        ObjectType::BusinessUser,
        r#"{"objectId": "user2_Id_In_The_CRM", "isDeleted": true, "emailAddress": "john.taylor@acme.com", "modifiedDate": "2019-01-03T23:45:57+01:00"}"#,
    );
    assert!(r.deleted);
    assert_eq!(
        r.body,
        r#"{"objectId":"user2_Id_In_The_CRM","isDeleted":true,"emailAddress":"john.taylor@acme.com","modifiedDate":"2019-01-03T23:45:57+01:00"}"#
    );
}

#[test]
fn seed_stages() {
    let r = ok(
        ObjectType::Stage,
        r#"{"objectId": "discovery", "name": "Discovery", "isActive": true, "sortOrder": 1}"#,
    );
    assert_eq!(r.modified, None);
    assert!(!r.deleted);
    assert_eq!(
        r.body,
        r#"{"objectId":"discovery","name":"Discovery","isActive":true,"sortOrder":1,"isDeleted":false}"#
    );
    let r = ok(
        ObjectType::Stage,
        r#"{"objectId": "won", "modifiedDate": "2019-01-03T23:45:57+01:00", "name": "Closed Won", "isActive": true, "sortOrder": 5}"#,
    );
    assert_eq!(r.modified, Some(T0_UNIX));
    assert_eq!(
        r.body,
        r#"{"objectId":"won","modifiedDate":"2019-01-03T23:45:57+01:00","name":"Closed Won","isActive":true,"sortOrder":5,"isDeleted":false}"#
    );
}

#[test]
fn seed_accounts() {
    let r = ok(
        ObjectType::Account,
        r#"{"objectId": "5ybyh6n6n65", "modifiedDate": "2019-01-03T23:45:57+01:00", "url": "https://crm.com/accounts/5ybyh6n6n65", "name": "PBR", "domains": ["pbr.com", "pbr.gov"], "type": "Investor"}"#,
    );
    assert_eq!(
        r.body,
        r#"{"objectId":"5ybyh6n6n65","modifiedDate":"2019-01-03T23:45:57+01:00","url":"https://crm.com/accounts/5ybyh6n6n65","name":"PBR","domains":["pbr.com","pbr.gov"],"type":"Investor","isDeleted":false}"#
    );
    let r = ok(
        ObjectType::Account,
        r#"{"objectId": "gfjhty756th", "modifiedDate": "2019-01-03T22:45:57Z", "name": "PBR", "domains": ["pbr.com", "pbr.gov"], "isDeleted": true}"#,
    );
    assert!(r.deleted);
    assert_eq!(r.modified, Some(T0_UNIX));
}

#[test]
fn seed_contact() {
    let r = ok(
        ObjectType::Contact,
        r#"{"objectId": "5zbwd7n5n65", "modifiedDate": "2019-01-03T23:45:57+01:00", "url": "https://crm.com/contacts/5zbwd7n5n65", "accountId": "5ybyh6n6n65", "emailAddress": "john.smith@acme.com", "firstName": "john", "lastName": "smith", "phoneNumber": "(912) 507-4395"}"#,
    );
    assert_eq!(r.object_id, "5zbwd7n5n65");
    assert_eq!(
        r.body,
        r#"{"objectId":"5zbwd7n5n65","modifiedDate":"2019-01-03T23:45:57+01:00","url":"https://crm.com/contacts/5zbwd7n5n65","accountId":"5ybyh6n6n65","emailAddress":"john.smith@acme.com","firstName":"john","lastName":"smith","phoneNumber":"(912) 507-4395","isDeleted":false}"#
    );
}

#[test]
fn seed_leads() {
    let lines = [
        r#"{"objectId": "4v5bt54t553", "modifiedDate": "2019-01-03T23:45:57+01:00", "url": "https://crm.com/leads/45k4j5j5k44", "emailAddress": "jane.doe@acme.com", "firstName": "Jane", "lastName": "Doe", "title": "VP Special Effects", "phoneNumber": "(912) 507-4395"}"#,
        r#"{"objectId": "gf4543gf6th", "modifiedDate": "2019-01-03T22:45:57Z", "emailAddress": "john.smith@acme.com", "firstName": "John", "lastName": "Smith", "isDeleted": true} "#,
        r#"{"objectId": "63473hjg53h", "modifiedDate": "2019-01-03T23:45:57+01:00", "emailAddress": "bob.smith@acme.com", "firstName": "Bob", "lastName": "Smith", "convertedToDealId": "dkfj8dfgf87", "convertedToContactId": "87grhn74hg6", "convertedToAccountId": "6sjk47jf78d"} "#,
    ];
    let file = lines.join("\n");
    let got = outcomes(file.as_bytes(), ObjectType::Lead);
    assert_eq!(got.len(), 3);
    let recs: Vec<ValidRecord> = got.into_iter().map(|o| o.result.unwrap()).collect();
    assert!(!recs[0].deleted && recs[1].deleted && !recs[2].deleted);
    let b: Value = serde_json::from_str(&recs[2].body).unwrap();
    assert_eq!(b["convertedToAccountId"], "6sjk47jf78d");
    assert_eq!(b["isDeleted"], false);
}

const SEED_DEAL: &str = r#"{"objectId": "8608553", "modifiedDate": "2022-02-04T18:24:59Z", "url": "http://crm.com/deals/8608553", "accountId": "5ybyh6n6n65", "ownerId": "5486951", "name": "Deal name", "createdDate": "2022-02-04T17:57:23Z", "closeDate": "2022-09-04", "status": OPEN, "stage": "discovery", "amount": 7000, "custom_field_1": "2022-02-04T17:57:23.000Z", "custom_field_2": null}"#;

#[test]
fn seed_deal_with_unquoted_status_is_invalid_json() {
    let e = err(ObjectType::Deal, SEED_DEAL);
    assert!(e.starts_with("Line is not valid JSON: "), "{e}");
    let got = outcomes(SEED_DEAL.as_bytes(), ObjectType::Deal);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, 1);
    assert!(got[0]
        .result
        .as_ref()
        .unwrap_err()
        .starts_with("Line is not valid JSON"));
}

#[test]
fn seed_deal_quoted() {
    let fixed = SEED_DEAL.replace("\"status\": OPEN", "\"status\": \"OPEN\"");
    let r = ok(ObjectType::Deal, &fixed);
    assert_eq!(r.modified, Some(1_643_999_099));
    assert_eq!(
        r.body,
        r#"{"objectId":"8608553","modifiedDate":"2022-02-04T18:24:59Z","url":"http://crm.com/deals/8608553","accountId":"5ybyh6n6n65","ownerId":"5486951","name":"Deal name","createdDate":"2022-02-04T17:57:23Z","closeDate":"2022-09-04","status":"OPEN","stage":"discovery","amount":7000,"custom_field_1":"2022-02-04T17:57:23.000Z","isDeleted":false}"#
    );
    // Once the schema defines custom_field_1 as DATETIME, its milliseconds are an error.
    let schema = Schema::new([field("custom_field_1", FieldType::DateTime)]);
    let e = validate_record(ObjectType::Deal, &schema, fixed.as_bytes()).unwrap_err();
    assert!(
        e.starts_with("Field [custom_field_1] must be an ISO-8601 datetime without milliseconds"),
        "{e}"
    );
}

// ------------------------------------------------------------------------------------------
// common fields

#[test]
fn object_id_rules() {
    for ty in ObjectType::ALL {
        let mandatory = "Mandatory field [objectId] is missing or empty";
        let stripped = line(ty, "").replacen(r#""objectId":"#, r#""other":"#, 1);
        assert_eq!(err(ty, &stripped), mandatory);
        for bad_value in ["null", "\"\""] {
            let l = line(ty, "").replacen(
                r#""objectId":"x1""#,
                &format!(r#""objectId":{bad_value}"#),
                1,
            );
            let l = l
                .replacen(
                    r#""objectId":"s1""#,
                    &format!(r#""objectId":{bad_value}"#),
                    1,
                )
                .replacen(
                    r#""objectId":"u1""#,
                    &format!(r#""objectId":{bad_value}"#),
                    1,
                );
            assert_eq!(err(ty, &l), mandatory, "{l}");
        }
    }
    let with_id = |id: &str| format!(r#"{{"objectId":{id},"modifiedDate":"{T0}"}}"#);
    let msg = "Field [objectId] must be at most 64 characters of letters, digits, '-' and '_', or a valid email address";
    for bad in [
        "12345".to_owned(),
        "true".to_owned(),
        "[\"a\"]".to_owned(),
        "\"a b\"".to_owned(),
        "\"a.b\"".to_owned(),
        "\"a/b\"".to_owned(),
        "\"é\"".to_owned(),
        format!("\"{}\"", "a".repeat(65)),
        "\"john@\"".to_owned(),
    ] {
        assert_eq!(err(ObjectType::Contact, &with_id(&bad)), msg, "{bad}");
    }
    for good in ["a", "A-b_9", "john.doe@acme.com", &"z".repeat(64)] {
        let r = ok(ObjectType::Contact, &with_id(&format!("\"{good}\"")));
        assert_eq!(r.object_id, good);
    }
}

#[test]
fn modified_date_rules() {
    let msg = "Field [modifiedDate] must be an ISO-8601 datetime without milliseconds";
    for ty in ObjectType::ALL
        .into_iter()
        .filter(|t| *t != ObjectType::Stage)
    {
        let base = line(ty, "");
        let missing = base.replacen(&format!(r#","modifiedDate":"{T0}""#), "", 1);
        assert_eq!(
            err(ty, &missing),
            "Mandatory field [modifiedDate] is missing or empty"
        );
        let null = base.replacen(&format!(r#""{T0}""#), "null", 1);
        assert_eq!(
            err(ty, &null),
            "Mandatory field [modifiedDate] is missing or empty"
        );
        let empty = base.replacen(&format!(r#""{T0}""#), "\"\"", 1);
        assert_eq!(
            err(ty, &empty),
            "Mandatory field [modifiedDate] is missing or empty"
        );
        for bad in [
            "\"2019-01-03T23:45:57.000+01:00\"",
            "\"2019-01-03T23:45:57.000Z\"",
            "\"2019-01-03t23:45:57Z\"",
            "\"2019-01-03T23:45:57z\"",
            "\"2019-01-03 23:45:57Z\"",
            "\"2019-01-03T23:45:57\"",
            "\"2019-01-03T24:00:00Z\"",
            "\"2019-02-30T10:00:00Z\"",
            "\"2019-01-03T23:45:60Z\"",
            "\"2019-01-03\"",
            "1546555557",
            "true",
        ] {
            assert_eq!(
                err(ty, &base.replacen(&format!(r#""{T0}""#), bad, 1)),
                msg,
                "{ty} {bad}"
            );
        }
        assert_eq!(ok(ty, &base).modified, Some(T0_UNIX));
    }
    // STAGE: optional, but checked when present.
    assert_eq!(
        ok(ObjectType::Stage, &line(ObjectType::Stage, "")).modified,
        None
    );
    assert_eq!(
        ok(
            ObjectType::Stage,
            &line(ObjectType::Stage, r#""modifiedDate":null"#)
        )
        .modified,
        None
    );
    assert_eq!(
        ok(
            ObjectType::Stage,
            &line(
                ObjectType::Stage,
                r#""modifiedDate":"1970-01-01T01:00:00+01:00""#
            )
        )
        .modified,
        Some(0)
    );
    assert_eq!(
        err(
            ObjectType::Stage,
            &line(ObjectType::Stage, r#""modifiedDate":"""#)
        ),
        msg
    );
    assert_eq!(
        err(
            ObjectType::Stage,
            &line(
                ObjectType::Stage,
                r#""modifiedDate":"2019-01-03T23:45:57.1Z""#
            )
        ),
        msg
    );
}

#[test]
fn is_deleted_rules() {
    for ty in ObjectType::ALL {
        assert_eq!(
            body(ty, &line(ty, ""))["isDeleted"],
            false,
            "{ty}: default false"
        );
        assert_eq!(
            body(ty, &line(ty, r#""isDeleted":null"#))["isDeleted"],
            false
        );
        assert_eq!(
            body(ty, &line(ty, r#""isDeleted":false"#))["isDeleted"],
            false
        );
        for bad in ["\"true\"", "1", "0", "[]"] {
            assert_eq!(
                err(ty, &line(ty, &format!(r#""isDeleted":{bad}"#))),
                "Field [isDeleted] must be a boolean"
            );
        }
        let r = ok(ty, &line(ty, r#""isDeleted":true"#));
        assert_eq!(r.deleted, ty != ObjectType::Stage, "{ty}");
    }
}

#[test]
fn stage_is_deleted_makes_it_inactive() {
    let r = ok(
        ObjectType::Stage,
        &line(ObjectType::Stage, r#""isDeleted":true"#),
    );
    assert!(!r.deleted);
    let b: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(b["isActive"], false);
    assert_eq!(b["isDeleted"], true);
    let r = ok(
        ObjectType::Stage,
        &line(ObjectType::Stage, r#""isActive":true,"isDeleted":true"#),
    );
    assert!(!r.deleted);
    assert_eq!(
        r.body,
        r#"{"objectId":"s1","name":"Discovery","isActive":false,"isDeleted":true,"sortOrder":1}"#
    );
}

#[test]
fn url_rules() {
    for ty in ObjectType::ALL {
        for good in [
            "https://crm.com/x/1",
            "http://crm.com",
            "https://a.b.c:8443/p?q=1#f",
        ] {
            assert_eq!(
                body(ty, &line(ty, &format!(r#""url":"{good}""#)))["url"],
                good
            );
        }
        for bad in [
            "\"crm.com/x\"",
            "\"ftp://crm.com\"",
            "\"https://\"",
            "\"https://a b.com\"",
            "\"\"",
            "42",
            "[\"https://crm.com\"]",
        ] {
            assert_eq!(
                err(ty, &line(ty, &format!(r#""url":{bad}"#))),
                "Field [url] must be an absolute http(s) URL",
                "{ty} {bad}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// per-type fields

#[test]
fn business_user_email_mandatory_unless_deleted() {
    let ty = ObjectType::BusinessUser;
    let no_email = format!(r#"{{"objectId":"u1","modifiedDate":"{T0}"}}"#);
    assert_eq!(
        err(ty, &no_email),
        "Mandatory field [emailAddress] is missing or empty"
    );
    for v in ["null", "\"\""] {
        let l = format!(r#"{{"objectId":"u1","modifiedDate":"{T0}","emailAddress":{v}}}"#);
        assert_eq!(
            err(ty, &l),
            "Mandatory field [emailAddress] is missing or empty"
        );
    }
    let deleted = format!(r#"{{"objectId":"u1","modifiedDate":"{T0}","isDeleted":true}}"#);
    assert!(ok(ty, &deleted).deleted);
    for bad in ["\"john\"", "\"john@acme\"", "\"@acme.com\"", "5"] {
        let l = format!(r#"{{"objectId":"u1","modifiedDate":"{T0}","emailAddress":{bad}}}"#);
        assert_eq!(
            err(ty, &l),
            "Field [emailAddress] must be a valid email address",
            "{bad}"
        );
    }
}

#[test]
fn contact_and_lead_fields() {
    for ty in [ObjectType::Contact, ObjectType::Lead] {
        assert_eq!(
            err(ty, &line(ty, r#""emailAddress":"not-an-email""#)),
            "Field [emailAddress] must be a valid email address"
        );
        assert_eq!(
            body(ty, &line(ty, r#""emailAddress":"a.b@c.io""#))["emailAddress"],
            "a.b@c.io"
        );
        let mut text = vec!["firstName", "lastName", "title", "phoneNumber"];
        if ty == ObjectType::Contact {
            text.push("accountId");
        } else {
            text.extend([
                "convertedToDealId",
                "convertedToContactId",
                "convertedToAccountId",
            ]);
        }
        for f in text {
            assert_eq!(
                err(ty, &line(ty, &format!(r#""{f}":12"#))),
                format!("Field [{f}] must be a string, not a number")
            );
            assert_eq!(body(ty, &line(ty, &format!(r#""{f}":"v""#)))[f], "v");
            assert_eq!(
                body(ty, &line(ty, &format!(r#""{f}":"""#)))[f],
                "",
                "plain strings may be empty"
            );
        }
    }
    // A CONTACT has no mandatory field besides objectId and modifiedDate.
    assert_eq!(
        ok(ObjectType::Contact, &line(ObjectType::Contact, "")).body,
        format!(r#"{{"objectId":"x1","modifiedDate":"{T0}","isDeleted":false}}"#)
    );
}

#[test]
fn account_fields() {
    let ty = ObjectType::Account;
    assert_eq!(
        ok(ty, &line(ty, "")).body,
        format!(
            r#"{{"objectId":"x1","modifiedDate":"{T0}","isDeleted":false,"name":"Account_#x1"}}"#
        )
    );
    assert_eq!(body(ty, &line(ty, r#""name":null"#))["name"], "Account_#x1");
    assert_eq!(body(ty, &line(ty, r#""name":"PBR""#))["name"], "PBR");
    assert_eq!(
        err(ty, &line(ty, r#""name":["PBR"]"#)),
        "Field [name] must be a string, not an array"
    );
    assert_eq!(body(ty, &line(ty, r#""domains":[]"#))["domains"], json!([]));
    assert_eq!(
        body(ty, &line(ty, r#""domains":["pbr.com","mail.pbr.co.uk"]"#))["domains"],
        json!(["pbr.com", "mail.pbr.co.uk"])
    );
    assert_eq!(
        err(ty, &line(ty, r#""domains":"pbr.com""#)),
        "Field [domains] must be an array of domain names"
    );
    assert_eq!(
        err(ty, &line(ty, r#""domains":["pbr.com","https://pbr.com"]"#)),
        "Field [domains] must be an array of domain names: [https://pbr.com] is not a domain name"
    );
    assert_eq!(
        err(ty, &line(ty, r#""domains":[1]"#)),
        "Field [domains] must be an array of domain names (strings)"
    );
    // emailAddress is not an ACCOUNT field: a custom field, stored as given.
    assert_eq!(
        body(ty, &line(ty, r#""emailAddress":"nope""#))["emailAddress"],
        "nope"
    );
}

#[test]
fn deal_fields_and_defaults() {
    let ty = ObjectType::Deal;
    assert_eq!(
        ok(ty, &line(ty, "")).body,
        format!(
            r#"{{"objectId":"x1","modifiedDate":"{T0}","isDeleted":false,"name":"Deal_#x1","status":"OPEN","amount":0}}"#
        )
    );
    for s in ["WON", "LOST", "OPEN"] {
        assert_eq!(
            body(ty, &line(ty, &format!(r#""status":"{s}""#)))["status"],
            s
        );
    }
    for bad in ["\"open\"", "\"CLOSED\"", "\"\"", "1"] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""status":{bad}"#))),
            "Field [status] must be one of WON, LOST, OPEN"
        );
    }
    assert_eq!(body(ty, &line(ty, r#""amount":7000"#))["amount"], 7000);
    assert_eq!(body(ty, &line(ty, r#""amount":-12.5"#))["amount"], -12.5);
    // Numbers are kept as sent, not rewritten as the nearest f64.
    assert!(ok(ty, &line(ty, r#""amount":1e3"#))
        .body
        .contains(r#""amount":1e3,"#));
    for n in [
        "1.50",
        "-0",
        "12345678901234567890123456789012345678901",
        "1E-7",
    ] {
        let custom = format!(r#""amount":{n},"huge":{n}"#);
        let b = ok(ty, &line(ty, &custom)).body;
        assert!(b.contains(&format!(r#""amount":{n},"huge":{n},"#)), "{b}");
    }
    assert!(err(ty, &line(ty, r#""amount":1e400"#)).contains("number out of range"));
    for bad in ["\"7000\"", "true", "[1]"] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""amount":{bad}"#))),
            "Field [amount] must be a number"
        );
    }
    // closeDate: a date, or a datetime whose (local) date is kept.
    assert_eq!(
        body(ty, &line(ty, r#""closeDate":"2022-09-04""#))["closeDate"],
        "2022-09-04"
    );
    assert_eq!(
        body(ty, &line(ty, r#""closeDate":"2022-09-04T23:30:00-05:00""#))["closeDate"],
        "2022-09-04"
    );
    assert_eq!(
        body(ty, &line(ty, r#""closeDate":"2022-09-04T00:00:00Z""#))["closeDate"],
        "2022-09-04"
    );
    for bad in [
        "\"2022-09-31\"",
        "\"2022-9-4\"",
        "\"04/09/2022\"",
        "\"2022-09-04T00:00:00.000Z\"",
        "20220904",
        "\"\"",
    ] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""closeDate":{bad}"#))),
            "Field [closeDate] must be a date YYYY-MM-DD or an ISO-8601 datetime without milliseconds",
            "{bad}"
        );
    }
    assert_eq!(
        body(ty, &line(ty, r#""createdDate":"2022-02-04T17:57:23Z""#))["createdDate"],
        "2022-02-04T17:57:23Z"
    );
    for bad in ["\"2022-02-04\"", "\"2022-02-04T17:57:23.5Z\"", "0"] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""createdDate":{bad}"#))),
            "Field [createdDate] must be an ISO-8601 datetime without milliseconds"
        );
    }
    for f in ["accountId", "ownerId", "name", "stage"] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""{f}":true"#))),
            format!("Field [{f}] must be a string, not a boolean")
        );
    }
    assert_eq!(
        body(ty, &line(ty, r#""name":"Big one""#))["name"],
        "Big one"
    );
}

#[test]
fn stage_fields_and_defaults() {
    let ty = ObjectType::Stage;
    assert_eq!(
        ok(ty, &line(ty, "")).body,
        r#"{"objectId":"s1","name":"Discovery","isDeleted":false,"isActive":true,"sortOrder":1}"#
    );
    for l in [
        r#"{"objectId":"s1"}"#,
        r#"{"objectId":"s1","name":null}"#,
        r#"{"objectId":"s1","name":""}"#,
    ] {
        assert_eq!(err(ty, l), "Mandatory field [name] is missing or empty");
    }
    assert_eq!(
        err(ty, r#"{"objectId":"s1","name":3}"#),
        "Field [name] must be a string, not a number"
    );
    assert_eq!(
        body(ty, &line(ty, r#""isActive":false"#))["isActive"],
        false
    );
    for bad in ["\"true\"", "1"] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""isActive":{bad}"#))),
            "Field [isActive] must be a boolean"
        );
    }
    assert_eq!(body(ty, &line(ty, r#""sortOrder":7"#))["sortOrder"], 7);
    for bad in ["0", "-1", "1.5", "2.0", "\"2\"", "true"] {
        assert_eq!(
            err(ty, &line(ty, &format!(r#""sortOrder":{bad}"#))),
            "Field [sortOrder] must be an integer from 1",
            "{bad}"
        );
    }
}

#[test]
fn standard_fields_of_other_types_are_custom_fields() {
    // `status` is a DEAL field; on a CONTACT it is an undefined custom field, stored as given.
    let b = body(
        ObjectType::Contact,
        &line(ObjectType::Contact, r#""status":"whatever","sortOrder":0"#),
    );
    assert_eq!(b["status"], "whatever");
    assert_eq!(b["sortOrder"], 0);
}

// ------------------------------------------------------------------------------------------
// line-level rules

#[test]
fn null_values_are_absent_and_dropped() {
    let r = ok(
        ObjectType::Contact,
        &line(
            ObjectType::Contact,
            r#""firstName":null,"custom":null,"title":"CTO""#,
        ),
    );
    assert_eq!(
        r.body,
        format!(r#"{{"objectId":"x1","modifiedDate":"{T0}","title":"CTO","isDeleted":false}}"#)
    );
}

#[test]
fn control_characters_in_error_texts_are_escaped() {
    // The issue's lines: a NUL in a duplicated key, and in an ACCOUNT domain.
    let e = err(
        ObjectType::Contact,
        &line(ObjectType::Contact, r#""x\u0000":1,"x\u0000":2"#),
    );
    assert_eq!(e, r"Field [x\u0000] appears more than once in the line");
    let e = err(
        ObjectType::Account,
        &line(ObjectType::Account, r#""domains":["bad\u0000dom.com"]"#),
    );
    assert!(e.contains(r"[bad\u0000dom.com]"), "{e}");
    assert!(!e.contains('\0'), "{e}");
}

#[test]
fn duplicate_keys_are_rejected() {
    assert_eq!(
        err(
            ObjectType::Contact,
            &line(ObjectType::Contact, r#""title":"a","title":"b""#)
        ),
        "Field [title] appears more than once in the line"
    );
    let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let l = line(ObjectType::Contact, &format!("{},\"k7\":1", many.join(",")));
    assert_eq!(
        err(ObjectType::Contact, &l),
        "Field [k7] appears more than once in the line"
    );
    assert!(check(
        ObjectType::Contact,
        &line(ObjectType::Contact, &many.join(","))
    )
    .is_ok());
}

#[test]
fn not_json_not_object_not_utf8() {
    for l in ["[1,2]", "\"x\"", "42", "null", "true", " [ ] "] {
        assert_eq!(
            err(ObjectType::Account, l),
            "Line is not a JSON object",
            "{l}"
        );
    }
    for l in [
        "{",
        "hello",
        "{\"objectId\":\"a\"} x",
        "{'objectId':'a'}",
        "{\"a\":1,}",
        "{\"a\":01}",
    ] {
        assert!(
            err(ObjectType::Account, l).starts_with("Line is not valid JSON: "),
            "{l}"
        );
    }
    let bad = b"{\"objectId\":\"a\xff\"}";
    assert_eq!(
        validate_record(ObjectType::Account, &Schema::empty(), bad).unwrap_err(),
        "Line is not valid UTF-8"
    );
}

#[test]
fn strings_are_reescaped_exactly() {
    let r = ok(
        ObjectType::Contact,
        &line(
            ObjectType::Contact,
            r#""title":"A \"q\" \\ \u00e9\n\t\u0001 \/ é","x\"y":"\ud83d\ude00""#,
        ),
    );
    let b: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(b["title"], "A \"q\" \\ é\n\t\u{1} / é");
    assert_eq!(b["x\"y"], "😀");
    assert!(
        r.body.contains(r#""title":"A \"q\" \\ é\n\t\u0001 / é""#),
        "{}",
        r.body
    );
}

#[test]
fn ad_hoc_custom_values_are_stored_as_given() {
    let b = body(
        ObjectType::Account,
        &line(
            ObjectType::Account,
            r#""nested":{"a":[1,{"b":null}]},"n":-0.5,"big":18446744073709551615,"flag":false"#,
        ),
    );
    assert_eq!(b["nested"], json!({"a": [1, {"b": null}]}));
    assert_eq!(b["n"], -0.5);
    assert_eq!(b["big"], json!(18446744073709551615u64));
    assert_eq!(b["flag"], false);
}

#[test]
fn custom_fields_follow_the_schema() {
    let mut pick = field("tier", FieldType::Picklist);
    pick.ordered_value_list = Some(vec!["Gold".into(), "Silver".into()]);
    let mut reference = field("partner", FieldType::Reference);
    reference.reference_to = Some(ObjectType::Account);
    let schema = Schema::new([
        field("d", FieldType::Date),
        field("dt", FieldType::DateTime),
        field("n", FieldType::Number),
        field("c", FieldType::Currency),
        field("p", FieldType::Percent),
        field("id", FieldType::Id),
        field("u", FieldType::Url),
        field("s", FieldType::String),
        field("b", FieldType::Boolean),
        field("ph", FieldType::PhoneNumber),
        field("e", FieldType::EmailAddress),
        pick,
        reference,
        field("sa", FieldType::StringArray),
        field("title", FieldType::Number), // a standard CONTACT field: the standard rule wins
    ]);
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "d",
            &["\"2024-02-29\""],
            &["\"2023-02-29\"", "\"2024-02-29T00:00:00Z\"", "1"],
        ),
        (
            "dt",
            &["\"2024-02-29T10:00:00-03:00\""],
            &["\"2024-02-29\"", "\"2024-02-29T10:00:00.000Z\""],
        ),
        ("n", &["1", "-2.5", "0"], &["\"1\"", "true"]),
        ("c", &["1999.99"], &["\"$5\""]),
        ("p", &["0", "100", "55.5"], &["-1", "100.01", "\"50\""]),
        ("id", &["\"abc\""], &["1"]),
        ("u", &["\"https://x.io/a\""], &["\"x.io\"", "1"]),
        ("s", &["\"\"", "\"text\""], &["[\"a\"]", "{}"]),
        ("b", &["true", "false"], &["\"true\"", "0"]),
        ("ph", &["\"+1 555\""], &["15551234"]),
        ("e", &["\"a@b.co\""], &["\"a@b\"", "1"]),
        (
            "tier",
            &["\"Gold\"", "\"Silver\""],
            &["\"gold\"", "\"Bronze\"", "1"],
        ),
        ("partner", &["\"001abc\""], &["7"]),
        (
            "sa",
            &["[]", "[\"a\",\"b\"]"],
            &["[\"a\",1]", "\"a\"", "[[\"a\"]]"],
        ),
        ("title", &["\"CTO\""], &["5"]),
    ];
    for (name, goods, bads) in cases {
        for g in *goods {
            let l = line(ObjectType::Contact, &format!(r#""{name}":{g}"#));
            let r = validate_record(ObjectType::Contact, &schema, l.as_bytes())
                .unwrap_or_else(|e| panic!("{name}={g}: {e}"));
            let b: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                b[name],
                serde_json::from_str::<Value>(g).unwrap(),
                "{name}={g}"
            );
        }
        for bad in *bads {
            let l = line(ObjectType::Contact, &format!(r#""{name}":{bad}"#));
            let e = validate_record(ObjectType::Contact, &schema, l.as_bytes())
                .expect_err(&format!("{name}={bad} accepted"));
            assert!(e.starts_with(&format!("Field [{name}] must be ")), "{e}");
        }
        // null counts as absent whatever the type
        let l = line(ObjectType::Contact, &format!(r#""{name}":null"#));
        assert!(validate_record(ObjectType::Contact, &schema, l.as_bytes()).is_ok());
    }
    let l = line(ObjectType::Contact, r#""tier":"Bronze""#);
    assert_eq!(
        validate_record(ObjectType::Contact, &schema, l.as_bytes()).unwrap_err(),
        "Field [tier] must be one of [Gold, Silver] (custom field of type PICKLIST)"
    );
    let l = line(ObjectType::Contact, r#""p":101"#);
    assert_eq!(
        validate_record(ObjectType::Contact, &schema, l.as_bytes()).unwrap_err(),
        "Field [p] must be a number from 0 to 100 (custom field of type PERCENT)"
    );
}

// ------------------------------------------------------------------------------------------
// schema upload

#[test]
fn schema_upload_valid() {
    let body = br#"[
        {"uniqueName":"tier","label":"Tier","type":"PICKLIST","orderedValueList":["Gold","Silver"],"lastModified":"2024-01-01T00:00:00Z"},
        {"uniqueName":"owner","label":"Owner","type":"REFERENCE","referenceTo":"USER"},
        {"uniqueName":"acct","label":"Account","type":"REFERENCE","referenceTo":"ACCOUNT","isDeleted":null},
        {"uniqueName":"old","label":"Old","type":"NUMBER","isDeleted":true,"referenceTo":"DEAL","extra":1}
    ]"#;
    let defs = parse_schema_upload(body).unwrap();
    assert_eq!(defs.len(), 4);
    assert_eq!(
        defs[0].ordered_value_list.as_deref(),
        Some(&["Gold".to_owned(), "Silver".to_owned()][..])
    );
    assert_eq!(
        defs[0].last_modified.as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    assert_eq!(defs[1].reference_to, Some(ObjectType::BusinessUser));
    assert_eq!(defs[2].reference_to, Some(ObjectType::Account));
    assert!(defs[3].is_deleted);
    assert_eq!(
        defs[3].reference_to, None,
        "referenceTo only kept for REFERENCE"
    );
    // serde: camelCase, type, USER on the wire, round trip.
    let v = serde_json::to_value(&defs[1]).unwrap();
    assert_eq!(v["uniqueName"], "owner");
    assert_eq!(v["type"], "REFERENCE");
    assert_eq!(v["referenceTo"], "USER");
    assert_eq!(v["isDeleted"], false);
    for d in &defs {
        let back: FieldDef = serde_json::from_str(&serde_json::to_string(d).unwrap()).unwrap();
        assert_eq!(&back, d);
    }
    let minimal: FieldDef =
        serde_json::from_str(r#"{"uniqueName":"a","label":"A","type":"STRING"}"#).unwrap();
    assert_eq!(minimal, field("a", FieldType::String).tap_label("A"));
    assert!(serde_json::from_str::<FieldDef>(
        r#"{"uniqueName":"a","label":"A","type":"REFERENCE","referenceTo":"STAGE"}"#
    )
    .is_err());

    let schema = Schema::new(defs);
    assert_eq!(schema.len(), 3);
    assert!(schema.get("old").is_none(), "deleted fields are ignored");
    assert_eq!(schema.get("tier").unwrap().label, "Tier");
    assert!(Schema::empty().get("tier").is_none());
    assert!(Schema::empty().is_empty());
}

trait TapLabel {
    fn tap_label(self, l: &str) -> Self;
}
impl TapLabel for FieldDef {
    fn tap_label(mut self, l: &str) -> Self {
        self.label = l.to_owned();
        self
    }
}

#[test]
fn schema_upload_errors() {
    let e = parse_schema_upload(b"{").unwrap_err();
    assert!(e[0].starts_with("Body is not valid JSON"), "{e:?}");
    assert_eq!(
        parse_schema_upload(br#"{"uniqueName":"a"}"#).unwrap_err(),
        vec!["Body must be a JSON array of field definitions"]
    );
    assert_eq!(parse_schema_upload(b"[]").unwrap(), vec![]);
    let body = br#"[
        7,
        {"label":"No name","type":"STRING"},
        {"uniqueName":"x","type":"STRING"},
        {"uniqueName":"y","label":"Y","type":"date"},
        {"uniqueName":"z","label":"Z"},
        {"uniqueName":"r","label":"R","type":"REFERENCE"},
        {"uniqueName":"r2","label":"R","type":"REFERENCE","referenceTo":"STAGE"},
        {"uniqueName":"p","label":"P","type":"PICKLIST","orderedValueList":[]},
        {"uniqueName":"p2","label":"P","type":"PICKLIST"},
        {"uniqueName":"p3","label":"P","type":"PICKLIST","orderedValueList":["a",1]},
        {"uniqueName":"ok","label":"OK","type":"STRING","isDeleted":"no"},
        {"uniqueName":"dup","label":"D","type":"STRING"},
        {"uniqueName":"dup","label":"D","type":"STRING"}
    ]"#;
    let e = parse_schema_upload(body).unwrap_err();
    let expected = [
        "Element 1 of the body is not a JSON object",
        "Mandatory field [uniqueName] is missing or empty (element 2)",
        "Mandatory field [label] is missing or empty (field [x])",
        "Field [type] of [y] must be one of DATE, DATETIME, NUMBER, PERCENT, CURRENCY, ID, URL, STRING, BOOLEAN, PHONENUMBER, EMAILADDRESS, PICKLIST, REFERENCE, STRINGARRAY",
        "Mandatory field [type] is missing or empty (field [z])",
        "Field [referenceTo] of [r] is required for type REFERENCE and must be one of ACCOUNT, CONTACT, DEAL, LEAD, USER",
        "Field [referenceTo] of [r2] is required for type REFERENCE and must be one of ACCOUNT, CONTACT, DEAL, LEAD, USER",
        "Field [orderedValueList] of [p] must be a non-empty list for type PICKLIST",
        "Field [orderedValueList] of [p2] must be a non-empty list for type PICKLIST",
        "Field [orderedValueList] of [p3] must be a list of strings",
        "Field [isDeleted] of [ok] must be a boolean",
        "Field [uniqueName] value [dup] appears more than once in the body",
    ];
    assert_eq!(e, expected);
}

#[test]
fn schema_replacement_plan() {
    let mut a = field("a", FieldType::String);
    let b = field("b", FieldType::Number);
    let c = field("c", FieldType::Date);
    let existing = vec![a.clone(), b.clone(), c.clone()];

    // First upload: nothing to compare with.
    let plan = plan_schema_replacement(&[], existing.clone()).unwrap();
    assert_eq!(plan.keep, existing);
    assert!(plan.drop_values_of.is_empty());

    // Leaving fields out is an error naming them.
    assert_eq!(
        plan_schema_replacement(&existing, vec![a.clone()]).unwrap_err(),
        "Schema upload is missing previously defined fields [b, c]: send every field again, or send it with isDeleted: true"
    );

    // Same fields again: nothing dropped.
    let plan = plan_schema_replacement(&existing, existing.clone()).unwrap();
    assert_eq!(plan.keep, existing);
    assert!(plan.drop_values_of.is_empty());

    // b deleted, c changes type, a relabelled, d new.
    let mut b_del = b.clone();
    b_del.is_deleted = true;
    let c_num = field("c", FieldType::Number);
    a.label = "Renamed".into();
    let d = field("d", FieldType::Boolean);
    let plan = plan_schema_replacement(&existing, vec![a.clone(), b_del, c_num.clone(), d.clone()])
        .unwrap();
    assert_eq!(plan.keep, vec![a, c_num, d]);
    assert_eq!(plan.drop_values_of, vec!["b".to_owned(), "c".to_owned()]);

    // A field deleted long ago is not required again.
    let mut gone = field("gone", FieldType::Url);
    gone.is_deleted = true;
    let plan = plan_schema_replacement(&[gone], vec![]).unwrap();
    assert!(plan.keep.is_empty());
}

// ------------------------------------------------------------------------------------------
// the streaming reader

#[test]
fn reader_line_numbers_blank_lines_crlf_bom() {
    let c = |id: &str| format!(r#"{{"objectId":"{id}","modifiedDate":"{T0}"}}"#);
    let data = format!(
        "\u{feff}{}\r\n\r\n   \n\t\n{}\n{}\r\nnot json\n\n{}",
        c("a"),
        c("b"),
        c("c"),
        c("d")
    );
    let got = summary(data.as_bytes(), ObjectType::Contact);
    assert_eq!(
        got,
        vec![
            (1, Ok("a".into())),
            (5, Ok("b".into())),
            (6, Ok("c".into())),
            (7, Err(got[3].1.clone().unwrap_err())),
            (9, Ok("d".into())),
        ]
    );
    assert!(got[3]
        .1
        .as_ref()
        .unwrap_err()
        .starts_with("Line is not valid JSON"));
    // A BOM only counts at the very start.
    let data = format!("{}\n\u{feff}{}\n", c("a"), c("b"));
    let got = summary(data.as_bytes(), ObjectType::Contact);
    assert!(got[1]
        .1
        .as_ref()
        .unwrap_err()
        .starts_with("Line is not valid JSON"));
    // Empty input, only blank lines.
    assert!(summary(b"", ObjectType::Contact).is_empty());
    assert!(summary(b"\n\r\n  \n", ObjectType::Contact).is_empty());
    // A lone CR is not a line end.
    let data = format!("{}\r{}\n", c("a"), c("b"));
    assert_eq!(summary(data.as_bytes(), ObjectType::Contact).len(), 1);
}

#[test]
fn reader_reports_bad_lines_in_place() {
    let data = b"{\"objectId\":\"a\",\"modifiedDate\":\"2019-01-03T22:45:57Z\"}\n[1]\n\xff\xfe\n{\"objectId\":\"b\"}\n";
    let got = summary(data, ObjectType::Contact);
    assert_eq!(got[0], (1, Ok("a".into())));
    assert_eq!(got[1], (2, Err("Line is not a JSON object".into())));
    assert_eq!(got[2], (3, Err("Line is not valid UTF-8".into())));
    assert_eq!(
        got[3],
        (
            4,
            Err("Mandatory field [modifiedDate] is missing or empty".into())
        )
    );
}

#[test]
fn reader_duplicate_object_ids() {
    let c = |id: &str, d: &str| format!(r#"{{"objectId":"{id}","modifiedDate":"{d}"}}"#);
    let lines = [
        c("a", T0),
        c("b", T0),
        c("a", "2020-01-01T00:00:00Z"),
        c("c", "bad"),
        c("c", T0),
        c("a", T0),
        c("A", T0),
    ];
    let got = summary(lines.join("\n").as_bytes(), ObjectType::Contact);
    let dup = |id: &str| {
        Err(format!(
            "Duplicate objectId [{id}] in file: send multiple updates of a record in separate files"
        ))
    };
    assert_eq!(
        got,
        vec![
            (1, Ok("a".into())),
            (2, Ok("b".into())),
            (3, dup("a")),
            (
                4,
                Err(
                    "Field [modifiedDate] must be an ISO-8601 datetime without milliseconds".into()
                )
            ),
            (5, Ok("c".into())), // the failed line 4 did not count as seen
            (6, dup("a")),
            (7, Ok("A".into())), // ids are case-sensitive
        ]
    );
}

fn long_line(len: usize) -> String {
    let head = format!(r#"{{"objectId":"big","modifiedDate":"{T0}","pad":""#);
    let pad = len - head.len() - 2;
    format!("{head}{}\"}}", "x".repeat(pad))
}

#[test]
fn reader_long_lines() {
    let exact = long_line(MAX_LINE_BYTES);
    assert_eq!(exact.len(), 1_048_576);
    let over = long_line(MAX_LINE_BYTES + 1);
    let ok_line = format!(r#"{{"objectId":"after","modifiedDate":"{T0}"}}"#);
    for ending in ["\n", "\r\n"] {
        let data = format!(
            "{exact}{ending}{over}{ending}{ok_line}{ending}{}{ending}{ok_line}",
            "y".repeat(5 * MAX_LINE_BYTES)
        );
        let got = summary(data.as_bytes(), ObjectType::Contact);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], (1, Ok("big".into())));
        assert_eq!(got[1], (2, Err("Line is longer than 1048576 bytes".into())));
        assert_eq!(got[2], (3, Ok("after".into())));
        assert_eq!(got[3], (4, Err("Line is longer than 1048576 bytes".into())));
        assert_eq!(got[4].0, 5);
    }
    // With a BOM the first line may still hold 1 MiB of content.
    let data = format!("\u{feff}{exact}");
    assert_eq!(
        summary(data.as_bytes(), ObjectType::Contact),
        vec![(1, Ok("big".into()))]
    );
    // An endless line without a newline.
    let endless = io::repeat(b'z').take(20 * MAX_LINE_BYTES as u64);
    let got: Vec<_> = FileValidator::new(endless, ObjectType::Contact, Schema::empty())
        .map(|o| o.unwrap())
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].result,
        Err("Line is longer than 1048576 bytes".into())
    );
}

struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.data.len() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.data.len() - self.pos).min(10);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn reader_io_errors_end_the_iteration() {
    let data = format!("{}\n", line(ObjectType::Contact, "")).into_bytes();
    let mut v = FileValidator::new(
        FailingReader { data, pos: 0 },
        ObjectType::Contact,
        Schema::empty(),
    );
    assert!(v.next().unwrap().unwrap().result.is_ok());
    assert_eq!(v.next().unwrap().unwrap_err().to_string(), "disk on fire");
    assert!(v.next().is_none());
}

#[test]
fn reader_uses_the_schema() {
    let schema = Schema::new([field("score", FieldType::Number)]);
    let data = format!(
        "{}\n{}\n",
        line(ObjectType::Deal, r#""score":5"#),
        line(ObjectType::Deal, r#""score":"five""#).replace("x1", "x2")
    );
    let got: Vec<_> = FileValidator::new(data.as_bytes(), ObjectType::Deal, schema)
        .map(|o| o.unwrap())
        .collect();
    assert!(got[0].result.is_ok());
    assert_eq!(
        got[1].result,
        Err("Field [score] must be a number (custom field of type NUMBER)".into())
    );
}

// ------------------------------------------------------------------------------------------
// report

#[test]
fn report_counts_and_lists() {
    let data = (1..=30)
        .map(|i| {
            if i % 3 == 0 {
                format!(r#"{{"objectId":"c{i}","modifiedDate":"{T0}"}}"#)
            } else {
                format!("bad {i}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut short = Report::new(false);
    let mut long = Report::new(true);
    for o in outcomes(data.as_bytes(), ObjectType::Contact) {
        short.add(&o);
        long.add(&o);
    }
    assert_eq!(short.success_count, 10);
    assert_eq!(short.error_count, 20);
    assert_eq!(short.first_errors.len(), Report::LISTED_ERRORS);
    assert!(short.all_errors.is_none());
    assert!(!short.is_success());
    let lines: Vec<u64> = short.first_errors.iter().map(|e| e.line).collect();
    let expected: Vec<u64> = (1..=30).filter(|i| i % 3 != 0).collect();
    assert_eq!(lines, expected);
    assert_eq!(long.all_errors.as_ref().unwrap().len(), 20);
    long.add_error(0, "Could not read the file".into());
    assert_eq!(long.error_count, 21);
    assert_eq!(long.first_errors.len(), 20);
    assert_eq!(long.all_errors.as_ref().unwrap().len(), 21);
    let e = LineError {
        line: 3,
        description: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"line": 3, "description": "x"})
    );
    assert!(Report::default().is_success());
}

// ------------------------------------------------------------------------------------------
// generator

#[test]
fn generator_is_deterministic_realistic_and_valid() {
    for ty in ObjectType::ALL {
        let mut a = Vec::new();
        let mut b = Vec::new();
        gen::write_lines(&mut a, ty, 500, 9, 0.0).unwrap();
        gen::write_lines(&mut b, ty, 500, 9, 0.0).unwrap();
        assert_eq!(a, b, "{ty}: same seed, same bytes");
        let mut c = Vec::new();
        gen::write_lines(&mut c, ty, 500, 10, 0.0).unwrap();
        assert_ne!(a, c, "{ty}: another seed, other bytes");
        assert_eq!(a.iter().filter(|&&x| x == b'\n').count(), 500);
        assert_eq!(a.last(), Some(&b'\n'));
        let got = outcomes(&a, ty);
        assert_eq!(got.len(), 500);
        for o in &got {
            assert!(o.result.is_ok(), "{ty} line {}: {:?}", o.line, o.result);
        }
        if ty == ObjectType::Contact {
            let avg = a.len() / 500;
            assert!(
                (150..=300).contains(&avg),
                "CONTACT lines average {avg} bytes"
            );
            let first: Value =
                serde_json::from_slice(a.split(|&x| x == b'\n').next().unwrap()).unwrap();
            for f in [
                "accountId",
                "emailAddress",
                "firstName",
                "lastName",
                "title",
                "phoneNumber",
            ] {
                assert!(first.get(f).is_some(), "CONTACT has {f}");
            }
        }
        if ty == ObjectType::Deal {
            let first: Value =
                serde_json::from_slice(a.split(|&x| x == b'\n').next().unwrap()).unwrap();
            for f in [
                "accountId",
                "ownerId",
                "name",
                "createdDate",
                "closeDate",
                "status",
                "stage",
                "amount",
            ] {
                assert!(first.get(f).is_some(), "DEAL has {f}");
            }
        }
    }
}

#[test]
fn generator_invalid_ratio() {
    for ty in ObjectType::ALL {
        let mut all_bad = Vec::new();
        gen::write_lines(&mut all_bad, ty, 300, 3, 1.0).unwrap();
        let got = outcomes(&all_bad, ty);
        assert_eq!(got.len(), 300);
        let mut kinds = std::collections::BTreeSet::new();
        for o in &got {
            let e = o
                .result
                .as_ref()
                .expect_err(&format!("{ty} line {} should be invalid", o.line));
            kinds.insert(e.split(']').next().unwrap().to_owned());
        }
        assert!(kinds.len() >= 5, "{ty}: varied errors {kinds:?}");
        let mut some_bad = Vec::new();
        gen::write_lines(&mut some_bad, ty, 2000, 3, 0.25).unwrap();
        let bad = outcomes(&some_bad, ty)
            .iter()
            .filter(|o| o.result.is_err())
            .count();
        assert!(
            (350..=650).contains(&bad),
            "{ty}: {bad} of 2000 invalid at 25%"
        );
    }
}

// ------------------------------------------------------------------------------------------
// fuzz corpus replay

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/validate");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        for ty in ObjectType::ALL {
            let mut report = Report::new(true);
            for o in FileValidator::new(&data[..], ty, Schema::empty()) {
                report.add(&o.unwrap());
            }
            assert!(report.success_count + report.error_count <= data.len() as u64 + 1);
        }
        n += 1;
    }
    assert!(n >= 12, "corpus has {n} files");
}

// ------------------------------------------------------------------------------------------
// properties

/// The reference: the strict format through `time`'s own format descriptions.
fn reference_parse(s: &str) -> Option<time::OffsetDateTime> {
    use time::macros::format_description;
    let z = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let off = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    time::PrimitiveDateTime::parse(s, z)
        .map(|p| p.assume_utc())
        .or_else(|_| time::OffsetDateTime::parse(s, off))
        .ok()
        // Java's limit on offsets, which `time` does not share.
        .filter(|d| d.offset().whole_seconds().abs() <= 18 * 3600)
}

fn datetime_strategy() -> impl Strategy<Value = (String, time::OffsetDateTime)> {
    (
        0i32..=9999,
        1u8..=12,
        1u8..=31,
        0u8..24,
        0u8..60,
        0u8..60,
        prop::option::of((-18i8..=18, 0i8..60)),
    )
        .prop_filter_map("real calendar date", |(y, mo, d, h, mi, s, off)| {
            let month = time::Month::try_from(mo).ok()?;
            let date = time::Date::from_calendar_date(y, month, d).ok()?;
            let t = time::Time::from_hms(h, mi, s).ok()?;
            let (offset, suffix) = match off {
                None => (time::UtcOffset::UTC, "Z".to_owned()),
                // Java's (Gong's) parser takes offsets up to ±18:00.
                Some((oh, om)) if oh.abs() == 18 && om > 0 => return None,
                Some((oh, om)) => {
                    let sign = if oh < 0 { '-' } else { '+' };
                    let (oh, om) = if oh < 0 { (oh, -om) } else { (oh, om) };
                    (
                        time::UtcOffset::from_hms(oh, om, 0).ok()?,
                        format!("{sign}{:02}:{:02}", oh.unsigned_abs(), om.unsigned_abs()),
                    )
                }
            };
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{suffix}");
            Some((
                text,
                time::PrimitiveDateTime::new(date, t).assume_offset(offset),
            ))
        })
}

/// Random-sized chunks, to show the reader does not depend on how reads are split.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Ok(0);
        }
        let want = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        if want == 0 {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "try again"));
        }
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn datetimes_round_trip((text, expected) in datetime_strategy()) {
        let parsed = parse_datetime(&text);
        prop_assert_eq!(parsed, Some(expected));
        prop_assert_eq!(parsed.unwrap().unix_timestamp(), expected.unix_timestamp());
        prop_assert_eq!(reference_parse(&text), Some(expected));
        // and it is accepted as modifiedDate, with that unix time
        let l = format!(r#"{{"objectId":"p","modifiedDate":"{text}"}}"#);
        prop_assert_eq!(check(ObjectType::Lead, &l).unwrap().modified, Some(expected.unix_timestamp()));
        // a closeDate datetime keeps its own date
        let l = format!(r#"{{"objectId":"p","modifiedDate":"{text}","closeDate":"{text}"}}"#);
        let b: Value = serde_json::from_str(&check(ObjectType::Deal, &l).unwrap().body).unwrap();
        prop_assert_eq!(b["closeDate"].as_str().unwrap(), &text[..10]);
    }

    #[test]
    fn datetime_mutations_are_rejected((text, _) in datetime_strategy(), frac in "[0-9]{1,6}") {
        let zone_at = 19;
        let mut mutations = vec![
            format!("{}.{frac}{}", &text[..zone_at], &text[zone_at..]),   // fractional seconds
            text.replacen('T', "t", 1),                                    // lowercase t
            text.replacen('T', " ", 1),                                    // space separator
            text[..zone_at].to_owned(),                                    // missing offset
            format!("{}24:00:00{}", &text[..11], &text[zone_at..]),        // 24:00
            format!("{}-02-30{}", &text[..4], &text[10..]),                // Feb 30
            format!("{}60{}", &text[..17], &text[zone_at..]),              // second 60
            format!("{}13{}", &text[..5], &text[7..]),                     // month 13
            format!("{} ", text),                                          // trailing space
        ];
        if text.ends_with('Z') {
            mutations.push(text.replacen('Z', "z", 1));                    // lowercase z
            mutations.push(format!("{}+0100", &text[..zone_at]));          // offset without colon
        }
        for m in mutations {
            prop_assert!(parse_datetime(&m).is_none(), "accepted {}", m);
            let l = format!(r#"{{"objectId":"p","modifiedDate":"{m}"}}"#);
            prop_assert_eq!(
                check(ObjectType::Contact, &l).unwrap_err(),
                "Field [modifiedDate] must be an ISO-8601 datetime without milliseconds"
            );
        }
    }

    #[test]
    fn datetime_matches_format_description(
        (text, _) in datetime_strategy(),
        edits in prop::collection::vec((0usize..25, prop::sample::select(b"0123456789-:+TZtz .".to_vec())), 0..3),
    ) {
        let mut b = text.into_bytes();
        for (i, c) in edits {
            if i < b.len() {
                b[i] = c;
            }
        }
        let s = String::from_utf8(b).unwrap();
        prop_assert_eq!(parse_datetime(&s), reference_parse(&s), "{}", s);
    }

    #[test]
    fn dates_round_trip((text, expected) in datetime_strategy()) {
        prop_assert_eq!(parse_date(&text[..10]), Some(expected.date()));
    }

    #[test]
    fn reader_ignores_how_input_is_split(
        seed in any::<u64>(),
        ty in prop::sample::select(ObjectType::ALL.to_vec()),
        sizes in prop::collection::vec(0usize..300, 1..20),
        crlf in any::<bool>(),
        blank_every in 2usize..9,
        bom in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let mut raw = Vec::new();
        gen::write_lines(&mut raw, ty, 40, seed, 0.3).unwrap();
        let mut data = Vec::new();
        if bom {
            data.extend_from_slice(b"\xEF\xBB\xBF");
        }
        for (i, l) in raw.split(|&c| c == b'\n').filter(|l| !l.is_empty()).enumerate() {
            if i % blank_every == 0 {
                data.extend_from_slice(if crlf { b"  \r\n" } else { b"\n" });
            }
            data.extend_from_slice(l);
            data.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        if !final_newline {
            while data.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                data.pop();
            }
        }
        let whole = outcomes(&data, ty);
        prop_assert_eq!(whole.len(), 40);
        let sizes = if sizes.iter().all(|&s| s == 0) { vec![1] } else { sizes };
        let chunked: Vec<LineOutcome> =
            FileValidator::new(Chunked { data: &data, sizes, i: 0 }, ty, Schema::empty())
                .map(|o| o.unwrap())
                .collect();
        prop_assert_eq!(&chunked, &whole);
        // and each outcome is what validate_record says about that physical line
        let text = String::from_utf8(data.clone()).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let physical: Vec<&str> = text.split('\n').collect();
        for o in &whole {
            let l = physical[(o.line - 1) as usize].trim_end_matches('\r');
            match (&o.result, validate_record(ty, &Schema::empty(), l.as_bytes())) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, &b),
                (Err(a), Err(b)) => prop_assert_eq!(a, &b),
                (Err(a), Ok(_)) => prop_assert!(a.starts_with("Duplicate objectId"), "{}", a),
                (Ok(_), Err(b)) => prop_assert!(false, "reader accepted a bad line: {}", b),
            }
        }
    }

    #[test]
    fn validation_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for ty in ObjectType::ALL {
            let _ = validate_record(ty, &Schema::empty(), &bytes);
            for o in FileValidator::new(&bytes[..], ty, Schema::empty()) {
                let _ = o.unwrap();
            }
        }
    }
}

#[test]
fn a_failed_line_carries_its_readable_object_id_and_the_field_at_fault() {
    let data = concat!(
        "{\"objectId\":\"c1\"}\n",
        "not json\n",
        "{\"objectId\":\"c3\",\"modifiedDate\":\"2024-01-01T00:00:00Z\",\"emailAddress\":\"x\"}\n",
        "{\"objectId\":\"bad id!\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n",
        "{\"objectId\":\"c5\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n",
        "{\"objectId\":\"c5\",\"modifiedDate\":\"2024-01-01T00:00:00Z\"}\n",
        "{\"objectId\":\"c7\",\"a]b\":1,\"a]b\":2}\n",
    );
    let got: Vec<_> = outcomes(data.as_bytes(), ObjectType::Contact)
        .iter()
        .filter_map(LineOutcome::error)
        .map(|e| (e.line, e.object_id, e.field))
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        got,
        [
            (1, s("c1"), s("modifiedDate")),
            (2, None, None),
            (3, s("c3"), s("emailAddress")),
            (4, None, s("objectId")),
            (6, s("c5"), s("objectId")),
            (7, s("c7"), s("a]b")),
        ]
    );
    assert_eq!(
        intake_model::field_of("Line is longer than 1048576 bytes"),
        None
    );
    let e = LineError::new(
        9,
        "Field [score] must be a number (custom field of type NUMBER)".into(),
    )
    .with_object_id(s("d1"));
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"line": 9, "objectId": "d1", "field": "score",
               "description": "Field [score] must be a number (custom field of type NUMBER)"})
    );
}
