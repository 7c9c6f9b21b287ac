//! Deterministic generator of realistic LDJSON lines for trials, tests and benchmarks.
//!
//! The random source is a built-in SplitMix64, so the output for a given seed never
//! changes with dependency versions.

use std::fmt::Write as _;
use std::io;

use crate::ObjectType;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift; the bias is irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The SplitMix64 finalizer: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Noa",
    "Yosef",
    "Aiko",
    "Ravi",
    "Priya",
    "Chen",
    "Olga",
    "Lars",
    "Fatima",
    "Mateo",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Levi",
    "Cohen",
    "Tanaka",
    "Sharma",
    "Patel",
    "Wang",
    "Ivanova",
    "Nilsson",
    "Haddad",
    "Silva",
];
const COMPANY: &[&str] = &[
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "vandelay",
    "pbr",
    "aperture",
    "massive",
    "oscorp",
    "gringotts",
    "monarch",
    "nakatomi",
    "prestige",
];
const TLD: &[&str] = &["com", "io", "co.uk", "de", "net", "org", "com.au", "fr"];
const TITLE: &[&str] = &[
    "VP Sales",
    "Account Executive",
    "CFO",
    "Head of Procurement",
    "Software Engineer",
    "Director of Operations",
    "CTO",
    "Marketing Manager",
    "VP Special Effects",
    "Office Manager",
];
const STAGES: &[&str] = &[
    "prospecting",
    "discovery",
    "qualification",
    "proposal",
    "negotiation",
    "won",
    "lost",
];
const STAGE_NAMES: &[&str] = &[
    "Prospecting",
    "Discovery",
    "Qualification",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
];
const DEAL_KIND: &[&str] = &["Expansion", "Renewal", "New Business", "Upsell", "Pilot"];
const OFFSETS: &[&str] = &[
    "Z", "Z", "Z", "+01:00", "-05:00", "+05:30", "+02:00", "-08:00",
];
const INDUSTRY: &[&str] = &["Investor", "Retail", "Manufacturing", "Software", "Health"];

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn prefix(ty: ObjectType) -> &'static str {
    match ty {
        ObjectType::Account => "001",
        ObjectType::Contact => "003",
        ObjectType::Deal => "006",
        ObjectType::Lead => "00Q",
        ObjectType::BusinessUser => "005",
        ObjectType::Stage => "stage-",
    }
}

/// A 13-character base-36 id, unique for distinct `n`.
fn push_id(out: &mut String, p: &str, n: u64) {
    out.push_str(p);
    let mut v = n;
    let mut digits = [b'0'; 13];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(v % 36) as usize];
        v /= 36;
    }
    out.extend(digits.iter().map(|&b| b as char));
}

fn id(ty: ObjectType, n: u64) -> String {
    let mut s = String::with_capacity(20);
    push_id(&mut s, prefix(ty), n);
    s
}

fn datetime(rng: &mut Rng) -> String {
    let year = 2019 + rng.below(7);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{}",
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.pick(OFFSETS)
    )
}

fn date(rng: &mut Rng) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        2019 + rng.below(8),
        1 + rng.below(12),
        1 + rng.below(28)
    )
}

fn phone(rng: &mut Rng) -> String {
    format!(
        "({}) {}-{:04}",
        200 + rng.below(800),
        200 + rng.below(800),
        rng.below(10000)
    )
}

/// Builds a JSON object; every value written here is free of characters that need escaping.
struct Obj(String);

impl Obj {
    fn new() -> Obj {
        Obj(String::with_capacity(320))
    }
    fn sep(&mut self) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
    }
    fn s(&mut self, k: &str, v: &str) -> &mut Obj {
        self.sep();
        let _ = write!(self.0, "\"{k}\":\"{v}\"");
        self
    }
    fn raw(&mut self, k: &str, v: &str) -> &mut Obj {
        self.sep();
        let _ = write!(self.0, "\"{k}\":{v}");
        self
    }
    fn finish(&mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        std::mem::take(&mut self.0)
    }
}

fn email(rng: &mut Rng, first: &str, last: &str, company: &str, tld: &str) -> String {
    let n = rng.below(100);
    format!(
        "{}.{}{}@{company}.{tld}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase(),
        if n < 70 { String::new() } else { n.to_string() }
    )
}

/// One valid line. `n` is the unique number of the record within the call.
fn valid_line(rng: &mut Rng, ty: ObjectType, n: u64, key: u64) -> String {
    let oid = id(ty, mix(n ^ key));
    let mut o = Obj::new();
    o.s("objectId", &oid);
    let company = rng.pick(COMPANY);
    let tld = rng.pick(TLD);
    match ty {
        ObjectType::Stage => {
            let k = rng.below(STAGES.len() as u64) as usize;
            if rng.chance(0.5) {
                o.s("modifiedDate", &datetime(rng));
            }
            o.s("name", STAGE_NAMES[k]);
            o.raw("isActive", if rng.chance(0.9) { "true" } else { "false" });
            o.raw("sortOrder", &(k + 1).to_string());
        }
        _ => {
            o.s("modifiedDate", &datetime(rng));
            let path = match ty {
                ObjectType::Account => "accounts",
                ObjectType::Contact => "contacts",
                ObjectType::Deal => "deals",
                ObjectType::Lead => "leads",
                _ => "users",
            };
            if rng.chance(0.7) {
                o.s("url", &format!("https://crm.com/{path}/{oid}"));
            }
            if rng.chance(0.02) {
                o.raw("isDeleted", "true");
            }
        }
    }
    match ty {
        ObjectType::Account => {
            let name = format!(
                "{}{} Inc.",
                &company[..1].to_ascii_uppercase(),
                &company[1..]
            );
            o.s("name", &name);
            let domains = if rng.chance(0.3) {
                format!("[\"{company}.{tld}\",\"{company}-group.com\"]")
            } else {
                format!("[\"{company}.{tld}\"]")
            };
            o.raw("domains", &domains);
            o.s("industry", rng.pick(INDUSTRY));
        }
        ObjectType::Contact | ObjectType::Lead => {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            if ty == ObjectType::Contact {
                o.s("accountId", &id(ObjectType::Account, rng.below(1 << 40)));
            }
            o.s("emailAddress", &email(rng, first, last, company, tld));
            o.s("firstName", first);
            o.s("lastName", last);
            o.s("title", rng.pick(TITLE));
            o.s("phoneNumber", &phone(rng));
            if ty == ObjectType::Lead && rng.chance(0.2) {
                o.s(
                    "convertedToDealId",
                    &id(ObjectType::Deal, rng.below(1 << 40)),
                );
                o.s(
                    "convertedToContactId",
                    &id(ObjectType::Contact, rng.below(1 << 40)),
                );
                o.s(
                    "convertedToAccountId",
                    &id(ObjectType::Account, rng.below(1 << 40)),
                );
            }
        }
        ObjectType::Deal => {
            o.s("accountId", &id(ObjectType::Account, rng.below(1 << 40)));
            o.s("ownerId", &id(ObjectType::BusinessUser, rng.below(1 << 20)));
            let name = format!(
                "{}{} - {}",
                &company[..1].to_ascii_uppercase(),
                &company[1..],
                rng.pick(DEAL_KIND)
            );
            o.s("name", &name);
            o.s("createdDate", &datetime(rng));
            o.s("closeDate", &date(rng));
            o.s("status", rng.pick(&["OPEN", "OPEN", "OPEN", "WON", "LOST"]));
            o.s("stage", rng.pick(STAGES));
            let amount = if rng.chance(0.5) {
                (1000 * (1 + rng.below(500))).to_string()
            } else {
                format!("{}.{:02}", rng.below(1_000_000), rng.below(100))
            };
            o.raw("amount", &amount);
        }
        ObjectType::BusinessUser => {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            o.s("emailAddress", &email(rng, first, last, company, tld));
        }
        ObjectType::Stage => {}
    }
    o.finish()
}

/// Turns a valid line into an invalid one, in one of several ways.
fn spoil(rng: &mut Rng, ty: ObjectType, line: String) -> String {
    let oid_end = line.find("\",").unwrap_or(line.len());
    match rng.below(10) {
        // missing objectId
        0 => format!("{{{}", &line[oid_end + 2..]),
        // fractional seconds / lowercase t / space / Feb 30 / missing offset
        1 => {
            let bad = rng.pick(&[
                "2019-01-03T23:45:57.000Z",
                "2019-01-03t23:45:57Z",
                "2019-01-03 23:45:57Z",
                "2019-02-30T10:00:00Z",
                "2019-01-03T23:45:57",
                "2019-01-03T24:00:00Z",
            ]);
            match line.find("\"modifiedDate\":\"") {
                Some(i) => {
                    let start = i + 16;
                    let end = start + line[start..].find('"').unwrap_or(0);
                    format!("{}{bad}{}", &line[..start], &line[end..])
                }
                None => format!("{},\"modifiedDate\":\"{bad}\"}}", &line[..line.len() - 1]),
            }
        }
        // truncated: not JSON
        2 => line[..line.len() / 2].to_owned(),
        // valid JSON, not an object
        3 => format!("[{line}]"),
        // objectId with forbidden characters
        4 => format!("{{\"objectId\":\"bad id!{}", &line[oid_end..]),
        // relative url
        5 => format!(
            "{},\"url\":\"crm.example.com/x\"}}",
            &line[..line.len() - 1]
        )
        .replacen("\"url\":\"https://", "\"link\":\"https://", 1),
        // isDeleted not a boolean
        6 => format!("{},\"isDeleted\":\"yes\"}}", &line[..line.len() - 1]).replacen(
            "\"isDeleted\":true,",
            "",
            1,
        ),
        // unquoted value, as in the seed's DEAL example
        7 => format!("{},\"status\": OPEN}}", &line[..line.len() - 1]),
        // type-specific rule
        _ => {
            let extra = match ty {
                ObjectType::Contact | ObjectType::Lead | ObjectType::BusinessUser => {
                    return line.replacen('@', "(at)", 1);
                }
                ObjectType::Deal => return line.replacen("\"status\":\"", "\"status\":\"x", 1),
                ObjectType::Account => "\"domains\":[\"not a domain\"]",
                ObjectType::Stage => return line.replacen("\"sortOrder\":", "\"sortOrder\":-", 1),
            };
            let line = line.replacen("\"domains\":", "\"otherDomains\":", 1);
            format!("{},{extra}}}", &line[..line.len() - 1])
        }
    }
}

/// Writes `count` lines of type `ty` to `out`, one JSON object per line with '\n',
/// deterministic for a given `seed`.
///
/// A share `invalid_ratio` (0.0..=1.0) of lines are made invalid in varied ways (missing
/// objectId, bad modifiedDate, bad email, not JSON, ...). objectIds are unique within one
/// call. Lines are realistic: CONTACT with accountId/emailAddress/first/last names/title/
/// phone/url (about 250 bytes); DEAL with every field; ACCOUNT with domains and a custom
/// `industry`; STAGE with or without modifiedDate.
pub fn write_lines(
    out: &mut impl io::Write,
    ty: crate::ObjectType,
    count: u64,
    seed: u64,
    invalid_ratio: f64,
) -> io::Result<()> {
    let mut rng = Rng(mix(seed ^ 0x5EED_1A7E_0000_0000));
    let key = rng.next_u64();
    for n in 0..count {
        let mut line = valid_line(&mut rng, ty, n, key);
        if invalid_ratio > 0.0 && rng.chance(invalid_ratio) {
            line = spoil(&mut rng, ty, line);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}
