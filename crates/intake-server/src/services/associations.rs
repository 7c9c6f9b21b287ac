//! Which CRM records an activity belongs to (INTAKE-API.md, "Associations"): the rules,
//! applied to a chunk of activities at a time over one [`ReadSnapshot`].
//!
//! Each round of the rules asks the store once for the whole chunk (look-up keys of one
//! kind, states of one type), so a chunk of a thousand activities costs about as many
//! queries as one: the single call and the batch run the same code. Every record a
//! look-up key leads to is checked against its state at the time asked (the keys are a
//! superset index, see `intake_model::associate`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use intake_model::associate::{self, LookupKind};
use intake_model::wire::associations::{
    generic_context, Association, BodyFields, ContextObject, PartyOut, RawObject,
};
use intake_model::ObjectType;
use intake_store::{DomainSettings, ReadSnapshot};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ApiError;

/// The most parties an activity may have.
pub const MAX_PARTIES: usize = 500;
/// The most people listed per party, and deals per activity.
const MAX_PEOPLE: usize = 5;
const MAX_DEALS: usize = 5;
const FOURTEEN_DAYS: i64 = 14 * 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    Now,
    TimeOfCall,
}

impl Timing {
    fn as_str(self) -> &'static str {
        match self {
            Timing::Now => "Now",
            Timing::TimeOfCall => "TimeOfCall",
        }
    }
}

/// One party as sent, with what the rules compare.
#[derive(Debug)]
struct Party {
    sent: RawObject,
    /// Normalised email.
    email: Option<String>,
    domain: Option<String>,
    /// [`associate::phone_key`] of the phone number.
    phone: Option<String>,
}

/// A valid activity.
#[derive(Debug)]
pub struct Activity {
    /// Unix seconds.
    start: i64,
    timing: Timing,
    parties: Vec<Party>,
}

impl Activity {
    /// The time the activity's records are read at.
    fn at(&self) -> i64 {
        match self.timing {
            Timing::Now => i64::MAX,
            Timing::TimeOfCall => self.start,
        }
    }

    /// UTC days since 1970-01-01 of the start.
    fn start_day(&self) -> i64 {
        self.start.div_euclid(86_400)
    }
}

/// A JSON string member, or the problem with it.
fn string_member(object: &RawObject, name: &str, shown: &str) -> Result<Option<String>, String> {
    match object.get(name) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| format!("Field [{shown}] must be a string")),
    }
}

/// Reads one activity, naming every problem.
pub fn parse_activity(bytes: &[u8]) -> Result<Activity, Vec<String>> {
    let object: RawObject = match serde_json::from_slice(bytes) {
        Ok(object) => object,
        Err(err) if err.is_data() => {
            return Err(vec![
                "Request body must be a JSON object with startTime and parties".into(),
            ])
        }
        Err(err) => {
            return Err(vec![format!(
                "Request body is not valid JSON (line {}, column {})",
                err.line(),
                err.column()
            )])
        }
    };
    let mut problems = Vec::new();
    let start = match string_member(&object, "startTime", "startTime") {
        Ok(None) => {
            problems.push("Mandatory field [startTime] is missing or empty".to_owned());
            None
        }
        Ok(Some(text)) => {
            let parsed = intake_model::parse_timestamp(&text);
            if parsed.is_none() {
                problems.push(format!(
                    "Field [startTime] must be an ISO-8601 datetime with Z or ±HH:MM, got [{}]",
                    intake_model::escape_controls(text)
                ));
            }
            parsed
        }
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let timing = match string_member(&object, "timing", "timing") {
        Ok(None) => Timing::Now,
        Ok(Some(text)) if text == "Now" => Timing::Now,
        Ok(Some(text)) if text == "TimeOfCall" => Timing::TimeOfCall,
        Ok(Some(text)) => {
            problems.push(format!(
                "Field [timing] must be Now or TimeOfCall (case-sensitive), got [{}]",
                intake_model::escape_controls(text)
            ));
            Timing::Now
        }
        Err(problem) => {
            problems.push(problem);
            Timing::Now
        }
    };
    let parties = match object.get("parties") {
        None => {
            problems.push("Mandatory field [parties] is missing or empty".to_owned());
            Vec::new()
        }
        Some(raw) => match serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()) {
            Err(_) => {
                problems.push(format!(
                    "Field [parties] must be an array of 1 to {MAX_PARTIES} party objects"
                ));
                Vec::new()
            }
            Ok(list) if list.is_empty() || list.len() > MAX_PARTIES => {
                problems.push(format!(
                    "Field [parties] must hold 1 to {MAX_PARTIES} parties, got {}",
                    list.len()
                ));
                Vec::new()
            }
            Ok(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, raw)| match parse_party(i, raw) {
                    Ok(party) => Some(party),
                    Err(mut found) => {
                        problems.append(&mut found);
                        None
                    }
                })
                .collect(),
        },
    };
    match start {
        Some(start) if problems.is_empty() => Ok(Activity {
            start,
            timing,
            parties,
        }),
        _ => Err(problems),
    }
}

fn parse_party(index: usize, raw: &RawValue) -> Result<Party, Vec<String>> {
    let Ok(sent) = serde_json::from_str::<RawObject>(raw.get()) else {
        return Err(vec![format!(
            "Field [parties[{index}]] must be a JSON object"
        )]);
    };
    let mut problems = Vec::new();
    let email_field = format!("parties[{index}].emailAddress");
    let phone_field = format!("parties[{index}].phoneNumber");
    let email = string_member(&sent, "emailAddress", &email_field)
        .map_err(|p| problems.push(p))
        .ok()
        .flatten()
        .filter(|e| !e.trim().is_empty());
    let phone = string_member(&sent, "phoneNumber", &phone_field)
        .map_err(|p| problems.push(p))
        .ok()
        .flatten()
        .filter(|p| !p.trim().is_empty());
    if let Some(email) = &email {
        if !email.contains('@') {
            problems.push(format!(
                "Field [{email_field}] must contain an @, got [{}]",
                intake_model::escape_controls(email.clone())
            ));
        }
    }
    if email.is_none() && phone.is_none() && problems.is_empty() {
        problems.push(format!(
            "Field [parties[{index}]] must have an emailAddress or a phoneNumber"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let email = email.map(|e| associate::normalize_email(&e));
    let domain = email
        .as_deref()
        .and_then(associate::email_domain)
        .map(str::to_owned);
    Ok(Party {
        sent,
        email,
        domain,
        phone: phone.as_deref().and_then(associate::phone_key),
    })
}

/// The standard fields the rules read from a stored body.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default)]
struct Facts {
    email_address: Option<String>,
    phone_number: Option<String>,
    account_id: Option<String>,
    domains: Option<Vec<String>>,
    converted_to_contact_id: Option<String>,
    converted_to_account_id: Option<String>,
    converted_to_deal_id: Option<String>,
    owner_id: Option<String>,
    status: Option<String>,
    close_date: Option<String>,
    created_date: Option<String>,
}

/// A non-empty text member.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// A record as it stood at the time asked (present and not deleted).
#[derive(Debug)]
struct Rec {
    modified: i64,
    body: String,
    /// Whether `body` is a JSON object (its `fields` can be written).
    decoded: bool,
    facts: Facts,
}

type StateKey = (ObjectType, String, i64);

/// What the chunk has read so far: look-up hits by kind and key, and states by (type,
/// time) and id (nested, so that a look-up by `&str` allocates nothing).
struct World<'s> {
    snapshot: &'s mut dyn ReadSnapshot,
    hits: HashMap<LookupKind, HashMap<String, Vec<(ObjectType, String)>>>,
    states: HashMap<(ObjectType, i64), HashMap<String, Option<Rec>>>,
}

impl World<'_> {
    async fn lookup(&mut self, kind: LookupKind, keys: Vec<String>) -> Result<(), ApiError> {
        let known = self.hits.entry(kind).or_default();
        // A key or id with NUL matches nothing (none is stored: PostgreSQL cannot hold it).
        let missing: BTreeSet<String> = keys
            .into_iter()
            .filter(|k| !k.contains('\0'))
            .filter(|k| !known.contains_key(k))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let missing: Vec<String> = missing.into_iter().collect();
        let found = self.snapshot.lookup(kind, &missing).await?;
        let known = self.hits.entry(kind).or_default();
        for key in missing {
            known.entry(key).or_default();
        }
        for hit in found {
            known
                .entry(hit.key)
                .or_default()
                .push((hit.object_type, hit.object_id));
        }
        Ok(())
    }

    fn hits(&self, kind: LookupKind, key: &str) -> &[(ObjectType, String)] {
        self.hits
            .get(&kind)
            .and_then(|of_kind| of_kind.get(key))
            .map_or(&[], Vec::as_slice)
    }

    async fn load(&mut self, wanted: Vec<StateKey>) -> Result<(), ApiError> {
        let mut by_type: BTreeMap<i16, (ObjectType, BTreeSet<(String, i64)>)> = BTreeMap::new();
        for (object_type, id, at) in wanted {
            if id.contains('\0') {
                continue;
            }
            let known = self
                .states
                .get(&(object_type, at))
                .is_some_and(|of| of.contains_key(&id));
            if !known {
                by_type
                    .entry(object_type.code())
                    .or_insert_with(|| (object_type, BTreeSet::new()))
                    .1
                    .insert((id, at));
            }
        }
        for (_, (object_type, wanted)) in by_type {
            let wanted: Vec<(String, i64)> = wanted.into_iter().collect();
            let found = self.snapshot.states(object_type, &wanted).await?;
            for ((id, at), state) in wanted.into_iter().zip(found) {
                let rec = state.filter(|s| !s.deleted).map(|s| {
                    let facts = serde_json::from_str::<Facts>(&s.body);
                    Rec {
                        modified: s.modified,
                        decoded: facts.is_ok() && s.body.trim_start().starts_with('{'),
                        facts: facts.unwrap_or_default(),
                        body: s.body,
                    }
                });
                self.states
                    .entry((object_type, at))
                    .or_default()
                    .insert(id, rec);
            }
        }
        Ok(())
    }

    fn get(&self, object_type: ObjectType, id: &str, at: i64) -> Option<&Rec> {
        self.states
            .get(&(object_type, at))
            .and_then(|of| of.get(id))
            .and_then(Option::as_ref)
    }
}

/// A person matched to a party: a contact or a lead, and why.
#[derive(Debug)]
struct Person {
    object_type: ObjectType,
    id: String,
    reasons: BTreeSet<String>,
}

/// The rules' findings for one party.
#[derive(Debug, Default)]
struct PartyFindings {
    internal: bool,
    users: Vec<String>,
    people: Vec<Person>,
}

/// Whether a party's domain is kept out of domain matching.
fn domain_excluded(domain: &str, settings: &DomainSettings) -> bool {
    associate::is_free_mail(domain)
        || settings
            .excluded_domains
            .iter()
            .any(|d| associate::within(domain, d))
}

fn internal_domain(domain: &str, settings: &DomainSettings) -> bool {
    settings
        .internal_domains
        .iter()
        .any(|d| associate::within(domain, d))
}

/// The records of `object_type` that `kind`/`key` leads to and whose state at `at`
/// still holds it, newest `modifiedDate` first, then by objectId.
fn verified(
    world: &World<'_>,
    object_type: ObjectType,
    kind: LookupKind,
    key: &str,
    at: i64,
) -> Vec<(i64, String)> {
    let mut found: Vec<(i64, String)> = world
        .hits(kind, key)
        .iter()
        .filter(|(t, _)| *t == object_type)
        .filter_map(|(_, id)| {
            let rec = world.get(object_type, id, at)?;
            let holds = match kind {
                LookupKind::Email => given(&rec.facts.email_address)
                    .is_some_and(|e| associate::normalize_email(e) == key),
                LookupKind::Phone => given(&rec.facts.phone_number)
                    .and_then(associate::phone_key)
                    .is_some_and(|p| p == key),
                LookupKind::Domain | LookupKind::DealAccount => false,
            };
            holds.then(|| (rec.modified, id.clone()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.dedup_by(|a, b| a.1 == b.1);
    found
}

/// The party's domain when it takes part in domain matching (rule 4): not free-mail, not
/// excluded, not internal.
fn matching_domain<'p>(party: &'p Party, settings: &DomainSettings) -> Option<&'p str> {
    party
        .domain
        .as_deref()
        .filter(|d| !domain_excluded(d, settings) && !internal_domain(d, settings))
}

/// The domain a party is matched to accounts by (rule 4): one with an email, not
/// Internal, without a matched contact (by email, phone or through a lead).
fn by_domain<'p>(
    party: &'p Party,
    found: &PartyFindings,
    settings: &DomainSettings,
) -> Option<&'p str> {
    let has_contact = found
        .people
        .iter()
        .any(|p| p.object_type == ObjectType::Contact);
    (!found.internal && party.email.is_some() && !has_contact)
        .then(|| matching_domain(party, settings))
        .flatten()
}

fn parties_of(activities: &[Activity]) -> impl Iterator<Item = (&Activity, &Party)> {
    activities
        .iter()
        .flat_map(|a| a.parties.iter().map(move |p| (a, p)))
}

/// Answers one activity with the integration's settings, over a snapshot of its own (the
/// single association call and the web console).
pub async fn associate_one(
    state: &crate::AppState,
    integration: intake_store::IntegrationId,
    activity: Activity,
) -> Result<Association, ApiError> {
    let settings = state.store.domain_settings(integration).await?;
    let mut snapshot = state.store.read_snapshot(integration).await?;
    let mut answers = associate_chunk(snapshot.as_mut(), &settings, &[activity]).await?;
    answers
        .pop()
        .ok_or_else(|| ApiError::internal("no answer for one activity"))
}

/// Answers a chunk of activities over one snapshot, in order.
pub async fn associate_chunk(
    snapshot: &mut dyn ReadSnapshot,
    settings: &DomainSettings,
    activities: &[Activity],
) -> Result<Vec<Association>, ApiError> {
    let mut world = World {
        snapshot,
        hits: HashMap::new(),
        states: HashMap::new(),
    };
    let parties = || parties_of(activities);

    // Round 1: every key the parties may match, and the records those lead to.
    world
        .lookup(
            LookupKind::Email,
            parties().filter_map(|(_, p)| p.email.clone()).collect(),
        )
        .await?;
    world
        .lookup(
            LookupKind::Phone,
            parties().filter_map(|(_, p)| p.phone.clone()).collect(),
        )
        .await?;
    let mut wanted = Vec::new();
    for (activity, party) in parties() {
        let keys = [
            (LookupKind::Email, party.email.as_deref()),
            (LookupKind::Phone, party.phone.as_deref()),
        ];
        for (kind, key) in keys {
            if let Some(key) = key {
                for (t, id) in world.hits(kind, key) {
                    wanted.push((*t, id.clone(), activity.at()));
                }
            }
        }
    }
    world.load(wanted).await?;

    // Round 2: affiliation and people (rules 2 and 3).
    let mut findings: Vec<Vec<PartyFindings>> = Vec::with_capacity(activities.len());
    for activity in activities {
        let at = activity.at();
        let mut of_activity = Vec::with_capacity(activity.parties.len());
        for party in &activity.parties {
            let mut found = PartyFindings::default();
            if let Some(email) = &party.email {
                let mut users: Vec<String> = verified(
                    &world,
                    ObjectType::BusinessUser,
                    LookupKind::Email,
                    email,
                    at,
                )
                .into_iter()
                .map(|(_, id)| id)
                .collect();
                users.sort();
                found.users = users;
            }
            found.internal = !found.users.is_empty()
                || party
                    .domain
                    .as_deref()
                    .is_some_and(|d| internal_domain(d, settings));
            if !found.internal {
                let tries = [
                    (
                        ObjectType::Contact,
                        LookupKind::Email,
                        party.email.as_deref(),
                    ),
                    (
                        ObjectType::Contact,
                        LookupKind::Phone,
                        party.phone.as_deref(),
                    ),
                    (ObjectType::Lead, LookupKind::Email, party.email.as_deref()),
                    (ObjectType::Lead, LookupKind::Phone, party.phone.as_deref()),
                ];
                for (object_type, kind, key) in tries {
                    let Some(key) = key else { continue };
                    let mut people = verified(&world, object_type, kind, key, at);
                    if people.is_empty() {
                        continue;
                    }
                    people.truncate(MAX_PEOPLE);
                    let reason = match kind {
                        LookupKind::Email => "emailAddress",
                        _ => "phoneNumber",
                    };
                    found.people = people
                        .into_iter()
                        .map(|(_, id)| Person {
                            object_type,
                            id,
                            reasons: BTreeSet::from([reason.to_owned()]),
                        })
                        .collect();
                    break;
                }
            }
            of_activity.push(found);
        }
        findings.push(of_activity);
    }

    // Round 3: the contacts that listed leads were converted to.
    let mut wanted = Vec::new();
    for (activity, of_activity) in activities.iter().zip(&findings) {
        for person in of_activity.iter().flat_map(|f| &f.people) {
            if let Some(rec) = world.get(person.object_type, &person.id, activity.at()) {
                if let Some(contact) = given(&rec.facts.converted_to_contact_id) {
                    wanted.push((ObjectType::Contact, contact.to_owned(), activity.at()));
                }
            }
        }
    }
    world.load(wanted).await?;
    for (activity, of_activity) in activities.iter().zip(&mut findings) {
        let at = activity.at();
        for found in of_activity.iter_mut() {
            let mut listed: Vec<Person> = Vec::with_capacity(found.people.len());
            for person in std::mem::take(&mut found.people) {
                let converted = (person.object_type == ObjectType::Lead)
                    .then(|| world.get(ObjectType::Lead, &person.id, at))
                    .flatten()
                    .and_then(|rec| given(&rec.facts.converted_to_contact_id))
                    .filter(|c| world.get(ObjectType::Contact, c, at).is_some())
                    .map(str::to_owned);
                let lead_id = person.id.clone();
                listed.push(person);
                if let Some(contact) = converted {
                    let reason = format!("lead:{lead_id}");
                    match listed
                        .iter_mut()
                        .find(|p| p.object_type == ObjectType::Contact && p.id == contact)
                    {
                        Some(known) => {
                            known.reasons.insert(reason);
                        }
                        None => listed.push(Person {
                            object_type: ObjectType::Contact,
                            id: contact,
                            reasons: BTreeSet::from([reason]),
                        }),
                    }
                }
            }
            found.people = listed;
        }
    }

    // Round 4: accounts (rule 4), and the deals that leads were converted to. The
    // domains are looked up only for the parties that match by domain (an email, no
    // contact), and every account wanted is read in one round.
    let by_domain = |party, found| by_domain(party, found, settings);
    let domain_parties = || {
        activities
            .iter()
            .zip(&findings)
            .flat_map(move |(activity, of_activity)| {
                activity
                    .parties
                    .iter()
                    .zip(of_activity)
                    .filter_map(move |(party, found)| Some((activity, by_domain(party, found)?)))
            })
    };
    world
        .lookup(
            LookupKind::Domain,
            domain_parties()
                .flat_map(|(_, d)| associate::domain_and_parents(d).map(str::to_owned))
                .collect::<Vec<_>>(),
        )
        .await?;
    let mut wanted = Vec::new();
    for (activity, domain) in domain_parties() {
        for domain in associate::domain_and_parents(domain) {
            for (t, id) in world.hits(LookupKind::Domain, domain) {
                wanted.push((*t, id.clone(), activity.at()));
            }
        }
    }
    for (activity, of_activity) in activities.iter().zip(&findings) {
        let at = activity.at();
        for found in of_activity.iter().filter(|f| !f.internal) {
            for person in &found.people {
                let Some(rec) = world.get(person.object_type, &person.id, at) else {
                    continue;
                };
                let (account, deal) = match person.object_type {
                    ObjectType::Contact => (given(&rec.facts.account_id), None),
                    _ => (
                        given(&rec.facts.converted_to_account_id),
                        given(&rec.facts.converted_to_deal_id),
                    ),
                };
                if let Some(account) = account {
                    wanted.push((ObjectType::Account, account.to_owned(), at));
                }
                if let Some(deal) = deal {
                    wanted.push((ObjectType::Deal, deal.to_owned(), at));
                }
            }
        }
    }
    world.load(wanted).await?;
    let mut accounts: Vec<BTreeMap<String, BTreeSet<String>>> = Vec::new();
    for (activity, of_activity) in activities.iter().zip(&findings) {
        let at = activity.at();
        let mut candidates: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (party, found) in activity.parties.iter().zip(of_activity) {
            if found.internal {
                continue;
            }
            for person in &found.people {
                let Some(rec) = world.get(person.object_type, &person.id, at) else {
                    continue;
                };
                let (account, prefix) = match person.object_type {
                    ObjectType::Contact => (given(&rec.facts.account_id), "contact"),
                    _ => (given(&rec.facts.converted_to_account_id), "lead"),
                };
                if let Some(account) = account {
                    candidates
                        .entry(account.to_owned())
                        .or_default()
                        .insert(format!("{prefix}:{}", person.id));
                }
            }
            if let Some(domain) = by_domain(party, found) {
                for domain in associate::domain_and_parents(domain) {
                    for (_, account) in world.hits(LookupKind::Domain, domain) {
                        let Some(rec) = world.get(ObjectType::Account, account, at) else {
                            continue;
                        };
                        for entry in rec.facts.domains.iter().flatten() {
                            if associate::normalize_domain(entry) == domain {
                                candidates
                                    .entry(account.clone())
                                    .or_default()
                                    .insert(format!("domain:{entry}"));
                            }
                        }
                    }
                }
            }
        }
        accounts.push(candidates);
    }
    for (activity, candidates) in activities.iter().zip(&mut accounts) {
        candidates.retain(|id, _| world.get(ObjectType::Account, id, activity.at()).is_some());
    }

    // Round 5: the deals of the associated accounts (rule 5).
    world
        .lookup(
            LookupKind::DealAccount,
            accounts
                .iter()
                .flat_map(|c| c.keys().cloned())
                .collect::<Vec<_>>(),
        )
        .await?;
    let mut wanted = Vec::new();
    for (activity, candidates) in activities.iter().zip(&accounts) {
        for account in candidates.keys() {
            for (_, deal) in world.hits(LookupKind::DealAccount, account) {
                wanted.push((ObjectType::Deal, deal.clone(), activity.at()));
            }
        }
    }
    world.load(wanted).await?;

    let mut answers = Vec::with_capacity(activities.len());
    for ((activity, of_activity), candidates) in activities.iter().zip(findings).zip(accounts) {
        answers.push(answer(&world, activity, of_activity, candidates)?);
    }
    Ok(answers)
}

/// Whether a deal was open around the activity (rule 5).
fn open_around(facts: &Facts, activity: &Activity) -> bool {
    let created_ok = given(&facts.created_date)
        .and_then(intake_model::parse_timestamp)
        .is_none_or(|created| created <= activity.start.saturating_add(FOURTEEN_DAYS));
    match given(&facts.status).unwrap_or("OPEN") {
        "OPEN" => created_ok,
        "WON" | "LOST" => {
            created_ok && close_day(facts).is_some_and(|close| close >= activity.start_day() - 14)
        }
        _ => false,
    }
}

/// A deal's `closeDate` as UTC days since 1970-01-01.
fn close_day(facts: &Facts) -> Option<i64> {
    let date = intake_model::parse_date(given(&facts.close_date)?)?;
    Some(i64::from(date.to_julian_day()) - i64::from(EPOCH_JULIAN_DAY))
}

/// The Julian day of 1970-01-01.
const EPOCH_JULIAN_DAY: i32 = 2_440_588;

fn context_object(
    world: &World<'_>,
    object_type: ObjectType,
    id: &str,
    activity: &Activity,
    reasons: BTreeSet<String>,
) -> Result<ContextObject, ApiError> {
    let rec = world
        .get(object_type, id, activity.at())
        .ok_or_else(|| ApiError::internal(format!("{} {id} vanished", object_type.as_str())))?;
    if !rec.decoded {
        return Err(ApiError::internal(format!("undecodable body of {id}")));
    }
    let fields = BodyFields(rec.body.clone());
    Ok(ContextObject {
        object_type: context_name(object_type),
        object_id: id.to_owned(),
        timing: activity.timing.as_str(),
        reasons: reasons.into_iter().collect(),
        fields,
    })
}

/// The name Gong's context gives an object type (`Opportunity` for a DEAL, ...).
pub fn context_name(object_type: ObjectType) -> &'static str {
    match object_type {
        ObjectType::Contact => "Contact",
        ObjectType::Lead => "Lead",
        ObjectType::BusinessUser => "User",
        ObjectType::Account => "Account",
        ObjectType::Deal => "Opportunity",
        _ => object_type.as_str(),
    }
}

/// Rule 5 and the answer's shape for one activity.
fn answer(
    world: &World<'_>,
    activity: &Activity,
    findings: Vec<PartyFindings>,
    accounts: BTreeMap<String, BTreeSet<String>>,
) -> Result<Association, ApiError> {
    let at = activity.at();
    let mut deals: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for account in accounts.keys() {
        for (_, deal) in world.hits(LookupKind::DealAccount, account) {
            if world
                .get(ObjectType::Deal, deal, at)
                .is_some_and(|rec| given(&rec.facts.account_id) == Some(account.as_str()))
            {
                deals
                    .entry(deal.clone())
                    .or_default()
                    .insert(format!("account:{account}"));
            }
        }
    }
    for person in findings
        .iter()
        .filter(|f| !f.internal)
        .flat_map(|f| &f.people)
    {
        if person.object_type != ObjectType::Lead {
            continue;
        }
        let deal = world
            .get(ObjectType::Lead, &person.id, at)
            .and_then(|rec| given(&rec.facts.converted_to_deal_id));
        if let Some(deal) = deal.filter(|d| world.get(ObjectType::Deal, d, at).is_some()) {
            deals
                .entry(deal.to_owned())
                .or_default()
                .insert(format!("lead:{}", person.id));
        }
    }
    deals.retain(|id, _| {
        world
            .get(ObjectType::Deal, id, at)
            .is_some_and(|rec| open_around(&rec.facts, activity))
    });
    let users: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.internal)
        .flat_map(|f| f.users.iter().map(String::as_str))
        .collect();
    let owner = |id: &str| {
        world
            .get(ObjectType::Deal, id, at)
            .and_then(|rec| given(&rec.facts.owner_id))
            .filter(|owner| users.contains(owner))
            .map(str::to_owned)
    };
    if deals.keys().any(|id| owner(id).is_some()) {
        deals.retain(|id, _| owner(id).is_some());
        for (id, reasons) in deals.iter_mut() {
            if let Some(owner) = owner(id) {
                reasons.insert(format!("owner:{owner}"));
            }
        }
    }
    let mut deals: Vec<(String, BTreeSet<String>)> = deals.into_iter().collect();
    let distance = |id: &str| {
        world
            .get(ObjectType::Deal, id, at)
            .and_then(|rec| close_day(&rec.facts))
            .map(|close| (close - activity.start_day()).abs())
    };
    deals.sort_by(|a, b| {
        let (da, db) = (distance(&a.0), distance(&b.0));
        let rank = |d: Option<i64>| (d.is_none(), d.unwrap_or(0));
        rank(da).cmp(&rank(db)).then_with(|| a.0.cmp(&b.0))
    });
    deals.truncate(MAX_DEALS);

    let mut objects = Vec::with_capacity(accounts.len() + deals.len());
    for (id, reasons) in accounts {
        objects.push(context_object(
            world,
            ObjectType::Account,
            &id,
            activity,
            reasons,
        )?);
    }
    for (id, reasons) in deals {
        objects.push(context_object(
            world,
            ObjectType::Deal,
            &id,
            activity,
            reasons,
        )?);
    }

    let mut parties = Vec::with_capacity(findings.len());
    for (party, found) in activity.parties.iter().zip(findings) {
        let affiliation = if found.internal {
            "Internal"
        } else if party.email.is_some() {
            "External"
        } else {
            "Unknown"
        };
        let mut matched = Vec::new();
        if found.internal {
            for user in &found.users {
                let reasons = BTreeSet::from(["emailAddress".to_owned()]);
                matched.push(context_object(
                    world,
                    ObjectType::BusinessUser,
                    user,
                    activity,
                    reasons,
                )?);
            }
        } else {
            for person in found.people {
                matched.push(context_object(
                    world,
                    person.object_type,
                    &person.id,
                    activity,
                    person.reasons,
                )?);
            }
        }
        parties.push(PartyOut {
            sent: RawObject(party.sent.0.clone()),
            affiliation,
            context: generic_context(matched),
        });
    }
    Ok(Association {
        parties,
        context: generic_context(objects),
    })
}

/// Reads a `PUT /intake/v1/settings` body: both lists replaced, a list left out empty,
/// each domain normalised (rule 1), duplicates dropped (first kept).
pub fn parse_settings(bytes: &[u8]) -> Result<DomainSettings, Vec<String>> {
    let object: RawObject = serde_json::from_slice(bytes).map_err(|_| {
        vec![
            "Request body must be a JSON object with internalDomains and excludedDomains"
                .to_owned(),
        ]
    })?;
    let mut problems = Vec::new();
    let mut list = |name: &str| -> Vec<String> {
        let Some(raw) = object.get(name).filter(|raw| raw.get() != "null") else {
            return Vec::new();
        };
        let Ok(entries) = serde_json::from_str::<Vec<serde_json::Value>>(raw.get()) else {
            problems.push(format!("Field [{name}] must be an array of domain names"));
            return Vec::new();
        };
        let mut domains: Vec<String> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match entry
                .as_str()
                .map(|s| (s, associate::normalize_setting_domain(s)))
            {
                Some((_, Some(domain))) => {
                    if !domains.contains(&domain) {
                        domains.push(domain);
                    }
                }
                Some((text, None)) => problems.push(format!(
                    "Field [{name}[{i}]] must be a domain name, got [{}]",
                    intake_model::escape_controls(text.to_owned())
                )),
                None => problems.push(format!("Field [{name}[{i}]] must be a string")),
            }
        }
        domains
    };
    let internal_domains = list("internalDomains");
    let excluded_domains = list("excludedDomains");
    if problems.is_empty() {
        Ok(DomainSettings {
            internal_domains,
            excluded_domains,
        })
    } else {
        Err(problems)
    }
}
