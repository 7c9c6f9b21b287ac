//! Credentials: generation, hashing and checking. Secrets are stored only as SHA-256
//! hashes (they are long random strings, so a fast hash is enough) and compared in
//! constant time.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{CompanyId, Result, Store};

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub fn secret_matches(secret: &str, hash: &[u8]) -> bool {
    bool::from(hash_secret(secret).as_slice().ct_eq(hash))
}

/// A new access key (`IK` + 22 uppercase characters) and its secret.
pub fn new_access_key() -> (String, String) {
    let key = format!(
        "IK{}",
        random_string(22, b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    );
    (key, random_string(43, ALPHABET))
}

/// A new bearer token `itk_<id>.<secret>` and its id.
pub fn new_token() -> (String, String) {
    let id = format!("itk_{}", random_string(16, ALPHABET));
    let token = format!("{id}.{}", random_string(43, ALPHABET));
    (id, token)
}

/// Splits a bearer token into its id and secret.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    token
        .split_once('.')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// Who a request is from, once its credentials are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub company_id: CompanyId,
    /// `None`: an access key, allowed everything.
    pub scopes: Option<Vec<String>>,
}

impl Principal {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|scopes| scopes.iter().any(|s| s == scope))
    }
}

pub async fn check_basic(store: &dyn Store, key: &str, secret: &str) -> Result<Option<Principal>> {
    Ok(store.find_access_key(key).await?.and_then(|cred| {
        (!cred.revoked && secret_matches(secret, &cred.secret_hash)).then_some(Principal {
            company_id: cred.company_id,
            scopes: None,
        })
    }))
}

pub async fn check_bearer(store: &dyn Store, token: &str) -> Result<Option<Principal>> {
    let Some((id, _)) = split_token(token) else {
        return Ok(None);
    };
    Ok(store.find_token(id).await?.and_then(|cred| {
        (!cred.revoked && secret_matches(token, &cred.secret_hash)).then_some(Principal {
            company_id: cred.company_id,
            scopes: cred.scopes,
        })
    }))
}

/// Creates an access key for a company and returns (key, secret).
pub async fn create_access_key(store: &dyn Store, company: CompanyId) -> Result<(String, String)> {
    let (key, secret) = new_access_key();
    store
        .insert_access_key(company, &key, &hash_secret(&secret))
        .await?;
    Ok((key, secret))
}

/// Creates a bearer token for a company and returns it.
pub async fn create_token(
    store: &dyn Store,
    company: CompanyId,
    scopes: &[String],
) -> Result<String> {
    let (id, token) = new_token();
    store
        .insert_token(company, &id, &hash_secret(&token), scopes)
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_themselves() {
        let (_, secret) = new_access_key();
        let hash = hash_secret(&secret);
        assert!(secret_matches(&secret, &hash));
        assert!(!secret_matches("nope", &hash));
        let (id, token) = new_token();
        assert_eq!(split_token(&token).unwrap().0, id);
        assert!(split_token("garbage").is_none());
    }
}
