//! What the associations of an activity with CRM records compare, made exact (INTAKE-API.md,
//! "Associations", rule 1): how emails, phone numbers and domains are normalised, the
//! built-in free-mail domains, and the look-up keys a stored version is found by.
//!
//! The look-up keys of a version are a superset index: a key says that *some* version of
//! the record carried it. A reader checks each record it finds against the record's state
//! at the time asked (its latest version then), so keys never need removing when a later
//! version changes or deletes a value, and a replayed batch that writes a key twice changes
//! nothing.

use std::borrow::Cow;

use serde::Deserialize;

use crate::ObjectType;

/// What a look-up key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LookupKind {
    /// A contact's, lead's or BUSINESS_USER's normalised `emailAddress`.
    Email,
    /// A contact's or lead's phone key ([`phone_key`]).
    Phone,
    /// One of an account's normalised `domains`.
    Domain,
    /// A deal's `accountId`, as stored.
    DealAccount,
}

impl LookupKind {
    pub const ALL: [LookupKind; 4] = [
        LookupKind::Email,
        LookupKind::Phone,
        LookupKind::Domain,
        LookupKind::DealAccount,
    ];

    /// The code stored in the database.
    pub fn code(self) -> i16 {
        match self {
            LookupKind::Email => 1,
            LookupKind::Phone => 2,
            LookupKind::Domain => 3,
            LookupKind::DealAccount => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<LookupKind> {
        LookupKind::ALL
            .into_iter()
            .find(|k| i64::from(k.code()) == code)
    }
}

/// An email as compared: trimmed, Unicode lowercase.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The domain of a normalised email: what follows its last `@`, trailing dot removed;
/// `None` when there is no `@` or nothing after it.
pub fn email_domain(normalized_email: &str) -> Option<&str> {
    let (_, domain) = normalized_email.rsplit_once('@')?;
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    (!domain.is_empty()).then_some(domain)
}

/// An account's `domains` entry as compared: lowercased, a leading `www.` and a trailing
/// dot removed, surrounding spaces trimmed.
pub fn normalize_domain(domain: &str) -> String {
    let lower = domain.trim().to_lowercase();
    let bare = lower.strip_prefix("www.").unwrap_or(&lower);
    bare.strip_suffix('.').unwrap_or(bare).to_owned()
}

/// A domain given in settings: as [`normalize_domain`], after removing a scheme, path,
/// query and port (`https://www.Ourco.com:443/x` is `ourco.com`). `None` when what is left
/// is not a domain name.
pub fn normalize_setting_domain(raw: &str) -> Option<String> {
    let text = raw.trim();
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    let text = text.split(['/', '?', '#']).next().unwrap_or("");
    let text = text.rsplit_once('@').map_or(text, |(_, host)| host);
    let text = match text.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => text,
    };
    let domain = normalize_domain(text);
    crate::is_domain(&domain).then_some(domain)
}

/// Whether `domain` is `parent` or a subdomain of it.
pub fn within(domain: &str, parent: &str) -> bool {
    domain == parent
        || (domain.len() > parent.len()
            && domain.ends_with(parent)
            && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.')
}

/// `domain` and each of its parents, longest first (`eu.acme.com`, `acme.com`, `com`).
pub fn domain_and_parents(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, rest)| rest))
        .filter(|d| !d.is_empty())
}

/// The built-in free-mail domains: a party of one of these (or a subdomain) is never
/// matched to an account by its domain.
pub const FREE_MAIL_DOMAINS: &[&str] = &[
    "163.com",
    "126.com",
    "aol.com",
    "fastmail.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hey.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.fr",
    "icloud.com",
    "live.com",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "naver.com",
    "outlook.com",
    "pm.me",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "rambler.ru",
    "rediffmail.com",
    "t-online.de",
    "tutanota.com",
    "web.de",
    "yahoo.co.jp",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.fr",
    "yandex.com",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
    "libero.it",
];

pub fn is_free_mail(domain: &str) -> bool {
    FREE_MAIL_DOMAINS.iter().any(|free| within(domain, free))
}

/// Digits kept of a phone number before numbers are compared: the last 10 digits, or all of
/// them when there are fewer than 10; `None` below 7 digits (such a number never matches).
/// Two numbers match exactly when their keys are equal (rule 1).
pub fn phone_key(phone: &str) -> Option<String> {
    let digits: Vec<u8> = phone.bytes().filter(u8::is_ascii_digit).collect();
    match digits.len() {
        0..=6 => None,
        n => Some(String::from_utf8_lossy(&digits[n.saturating_sub(10)..]).into_owned()),
    }
}

/// The fields of a stored body that the look-ups read. Values of other shapes are ignored
/// (the validator guarantees these shapes for the standard fields).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KeyFields<'a> {
    #[serde(borrow, default)]
    email_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    phone_number: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    domains: Option<Vec<Cow<'a, str>>>,
}

/// Whether versions of `object_type` get look-up keys at all.
pub fn has_lookup_keys(object_type: ObjectType) -> bool {
    matches!(
        object_type,
        ObjectType::Contact
            | ObjectType::Lead
            | ObjectType::Account
            | ObjectType::Deal
            | ObjectType::BusinessUser
    )
}

/// The look-up keys of one stored version, each once. A deletion's body gets its keys
/// too: no reader takes a deleted record, and an erasure must find every version that
/// holds an address.
pub fn lookup_keys(object_type: ObjectType, body: &str) -> Vec<(LookupKind, String)> {
    if !has_lookup_keys(object_type) {
        return Vec::new();
    }
    let fields: KeyFields = serde_json::from_str(body).unwrap_or_default();
    let mut keys = Vec::new();
    let email = |keys: &mut Vec<_>| {
        if let Some(email) = fields.email_address.as_deref() {
            let email = normalize_email(email);
            if !email.is_empty() {
                keys.push((LookupKind::Email, email));
            }
        }
    };
    match object_type {
        ObjectType::Contact | ObjectType::Lead => {
            email(&mut keys);
            if let Some(phone) = fields.phone_number.as_deref().and_then(phone_key) {
                keys.push((LookupKind::Phone, phone));
            }
        }
        ObjectType::BusinessUser => email(&mut keys),
        ObjectType::Account => {
            for domain in fields.domains.iter().flatten() {
                let domain = normalize_domain(domain);
                if !domain.is_empty() {
                    keys.push((LookupKind::Domain, domain));
                }
            }
        }
        ObjectType::Deal => {
            if let Some(account) = fields.account_id.filter(|a| !a.is_empty()) {
                keys.push((LookupKind::DealAccount, account.into_owned()));
            }
        }
        _ => {}
    }
    // A NUL cannot be stored on PostgreSQL, and no party can be matched by one.
    keys.retain(|(_, key)| !key.contains('\0'));
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_domains() {
        assert_eq!(normalize_email("  Ann@ACME.com "), "ann@acme.com");
        assert_eq!(normalize_email("ÄNN@x.de"), "änn@x.de");
        assert_eq!(email_domain("a@b@eu.acme.com."), Some("eu.acme.com"));
        assert_eq!(email_domain("nobody"), None);
        assert_eq!(email_domain("a@"), None);
        assert_eq!(normalize_domain("WWW.Acme.COM"), "acme.com");
        assert_eq!(
            normalize_setting_domain("https://www.Ourco.com:8443/x?y").as_deref(),
            Some("ourco.com")
        );
        assert_eq!(
            normalize_setting_domain("partner-mail.com").as_deref(),
            Some("partner-mail.com")
        );
        assert_eq!(normalize_setting_domain("not a domain"), None);
        assert_eq!(normalize_setting_domain(""), None);
        assert!(within("eu.acme.com", "acme.com"));
        assert!(within("acme.com", "acme.com"));
        assert!(!within("notacme.com", "acme.com"));
        assert_eq!(
            domain_and_parents("eu.acme.com").collect::<Vec<_>>(),
            ["eu.acme.com", "acme.com", "com"]
        );
        assert!(is_free_mail("gmail.com"));
        assert!(is_free_mail("mail.yahoo.com"));
        assert!(!is_free_mail("acme.com"));
    }

    #[test]
    fn phones() {
        assert_eq!(
            phone_key("+1 (912) 507-4395").as_deref(),
            Some("9125074395")
        );
        assert_eq!(phone_key("912-507-4395").as_deref(), Some("9125074395"));
        assert_eq!(phone_key("507-4395").as_deref(), Some("5074395"));
        assert_eq!(phone_key("123456"), None);
        assert_eq!(phone_key("+44 20 7946 0958").as_deref(), Some("2079460958"));
    }

    #[test]
    fn keys_of_bodies() {
        let contact =
            r#"{"objectId":"c1","emailAddress":"Ann@Acme.com","phoneNumber":"+1 912 507 4395"}"#;
        assert_eq!(
            lookup_keys(ObjectType::Contact, contact),
            [
                (LookupKind::Email, "ann@acme.com".to_owned()),
                (LookupKind::Phone, "9125074395".to_owned())
            ]
        );
        let account = r#"{"objectId":"a1","domains":["www.Acme.com","acme.com","eu.acme.com"]}"#;
        assert_eq!(
            lookup_keys(ObjectType::Account, account),
            [
                (LookupKind::Domain, "acme.com".to_owned()),
                (LookupKind::Domain, "eu.acme.com".to_owned())
            ]
        );
        let deal = r#"{"objectId":"d1","accountId":"a1","amount":5}"#;
        assert_eq!(
            lookup_keys(ObjectType::Deal, deal),
            [(LookupKind::DealAccount, "a1".to_owned())]
        );
        assert!(lookup_keys(ObjectType::Stage, deal).is_empty());
    }
}
