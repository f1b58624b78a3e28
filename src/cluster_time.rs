//! Signed cluster time (with `--keyFile`): HMAC-SHA1 keys kept in the replicated catalog
//! (`admin.system.keys`), the signature every reply's `$clusterTime` carries, and the
//! check of a `$clusterTime` a client sends.
//!
//! As in mongod: a time is signed with the key that expires soonest after it; the proof is
//! HMAC-SHA1 over the time with its low 16 bits set (so one proof covers a range of
//! increments); a received time no later than this node's own is accepted unchecked;
//! a later one must carry a valid proof unless the client may `advanceClusterTime`.

use crate::catalog::{Catalog, Collection, Write};
use crate::clock::{pack, unpack, LogicalClock, SigningKeys};
use crate::error::{type_mismatch, whole_number, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document, Timestamp};
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::{Mutex, RwLock};
use sha1::Sha1;

/// The low bits a proof does not cover.
const RANGE_MASK: u64 = 0xFFFF;
pub const PROOF_LEN: usize = 20;

#[derive(Clone)]
struct SigningKey {
    id: i64,
    secret: Vec<u8>,
    /// Packed Timestamp after which the key signs nothing.
    expires_at: u64,
}

/// The keys this node knows, loaded from the catalog whenever it changes.
#[derive(Default)]
pub struct ClusterKeys {
    keys: RwLock<Vec<SigningKey>>,
    /// The last proof made: (time with the range bits set, key id, proof).
    last_proof: Mutex<Option<(u64, i64, [u8; PROOF_LEN])>>,
}

impl std::fmt::Debug for ClusterKeys {
    // Never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<i64> = self.keys.read().iter().map(|k| k.id).collect();
        f.debug_struct("ClusterKeys")
            .field("key_ids", &ids)
            .finish()
    }
}

fn proof(secret: &[u8], time: u64) -> [u8; PROOF_LEN] {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("any key size");
    mac.update(&(time | RANGE_MASK).to_le_bytes());
    mac.finalize().into_bytes().into()
}

/// A key as `admin.system.keys` holds it.
pub fn key_document(id: i64, secret: &[u8], expires_at: Timestamp) -> Document {
    doc! {
        "_id": id,
        "purpose": "HMAC",
        "key": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: secret.to_vec() },
        "expiresAt": expires_at,
    }
}

impl SigningKeys for ClusterKeys {
    /// Replaces what is cached with the catalog's keys.
    fn load(&self, catalog: &dyn Catalog) {
        let Ok(docs) = catalog.list(Collection::Keys) else {
            return;
        };
        let keys = docs
            .iter()
            .filter_map(|d| {
                let secret = match d.get("key") {
                    Some(Bson::Binary(b)) => b.bytes.clone(),
                    _ => return None,
                };
                Some(SigningKey {
                    id: d.get_i64("_id").ok()?,
                    secret,
                    expires_at: pack(d.get_timestamp("expiresAt").ok()?),
                })
            })
            .collect();
        *self.keys.write() = keys;
        *self.last_proof.lock() = None;
    }

    /// `(keyId, proof)` for `time`, or None while no key covers it.
    fn sign(&self, time: Timestamp) -> Option<(i64, [u8; PROOF_LEN])> {
        let ceiling = pack(time) | RANGE_MASK;
        let mut last = self.last_proof.lock();
        if let Some((t, id, p)) = *last {
            if t == ceiling {
                return Some((id, p));
            }
        }
        let keys = self.keys.read();
        let key = keys
            .iter()
            .filter(|k| k.expires_at > pack(time))
            .min_by_key(|k| k.expires_at)?;
        let p = proof(&key.secret, pack(time));
        *last = Some((ceiling, key.id, p));
        Some((key.id, p))
    }

    /// mongod's check of a received time: the key must exist and cover it, the proof match.
    fn validate(&self, time: Timestamp, key_id: i64, hash: &[u8]) -> CommandResult<()> {
        let keys = self.keys.read();
        let key = keys
            .iter()
            .find(|k| k.id == key_id && k.expires_at > pack(time))
            .ok_or_else(|| {
                CommandError::new(
                    Code::KeyNotFound,
                    format!(
                        "No keys found for HMAC that is valid for time: {{ ts: Timestamp({}, {}) }} with id: {key_id}",
                        time.time, time.increment
                    ),
                )
            })?;
        let expected = proof(&key.secret, pack(time));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], hash)) {
            return Err(CommandError::new(
                Code::TimeProofMismatch,
                "Proof does not match the cluster time",
            ));
        }
        Ok(())
    }

    /// The write that adds a key when fewer than two unexpired keys remain at `now` (the
    /// current one and the next, as mongod keeps them), expiring `interval_secs` after
    /// the last one. Its id is `now`, which no earlier key can have.
    fn next_key(&self, now: Timestamp, interval_secs: u32) -> Option<Write> {
        let keys = self.keys.read();
        let valid: Vec<&SigningKey> = keys.iter().filter(|k| k.expires_at > pack(now)).collect();
        if valid.len() >= 2 {
            return None;
        }
        let from = valid
            .iter()
            .map(|k| unpack(k.expires_at).time)
            .max()
            .unwrap_or(now.time);
        let expires_at = Timestamp {
            time: from.saturating_add(interval_secs),
            increment: 0,
        };
        let id = pack(now) as i64;
        Some(Write::Insert {
            collection: Collection::Keys,
            id: id.to_string(),
            doc: key_document(id, &crate::random::random_bytes(PROOF_LEN), expires_at),
        })
    }
}

fn raw_cluster_time(raw_body: Option<&[u8]>) -> Option<Bson> {
    let raw = bson::RawDocument::from_bytes(raw_body?).ok()?;
    let value = raw.get("$clusterTime").ok()??;
    Bson::try_from(value.to_raw_bson()).ok()
}

/// A `$clusterTime` as a client sends it.
struct SignedTime {
    time: Timestamp,
    hash: Vec<u8>,
    key_id: i64,
}

fn missing(field: &str) -> CommandError {
    CommandError::new(
        Code::NoSuchKey,
        format!("Missing expected field \"{field}\""),
    )
}

fn parse(value: &Bson) -> CommandResult<SignedTime> {
    let Bson::Document(d) = value else {
        return Err(type_mismatch("$clusterTime", value, "object"));
    };
    let time = match d.get("clusterTime") {
        Some(Bson::Timestamp(t)) => *t,
        Some(other) => return Err(type_mismatch("clusterTime", other, "timestamp")),
        None => return Err(missing("clusterTime")),
    };
    let signature = match d.get("signature") {
        Some(Bson::Document(s)) => s,
        Some(other) => return Err(type_mismatch("signature", other, "object")),
        None => return Err(missing("signature")),
    };
    let hash = match signature.get("hash") {
        Some(Bson::Binary(b)) if b.bytes.len() == PROOF_LEN => b.bytes.clone(),
        Some(Bson::Binary(_)) => {
            return Err(CommandError::new(
                Code::UnsupportedFormat,
                "Unsupported SHA1Block format",
            ))
        }
        Some(other) => return Err(type_mismatch("hash", other, "binData")),
        None => return Err(missing("hash")),
    };
    let key_id = match signature.get("keyId") {
        Some(value) => whole_number(value).ok_or_else(|| type_mismatch("keyId", value, "long"))?,
        None => return Err(missing("keyId")),
    };
    Ok(SignedTime { time, hash, key_id })
}

/// Takes in a request's `$clusterTime` (only with a keyFile: without one, nothing is
/// signed and a client's time is not taken): refused if it is later than this node's
/// and its proof does not hold, unless the client may advance the clock.
/// `raw_body` is the request as sent, when the parsed `body` leaves `$clusterTime` out;
/// `may_advance` asks whether the client holds `advanceClusterTime`.
pub fn gossip_in(
    clock: &LogicalClock,
    may_advance: impl FnOnce() -> bool,
    body: &Document,
    raw_body: Option<&[u8]>,
) -> CommandResult<()> {
    let Some(keys) = clock.keys() else {
        return Ok(());
    };
    let value = match body.get("$clusterTime") {
        Some(value) => value.clone(),
        None => match raw_cluster_time(raw_body) {
            Some(value) => value,
            None => return Ok(()),
        },
    };
    let signed = parse(&value)?;
    if pack(signed.time) <= pack(clock.now()) {
        return Ok(());
    }
    if !may_advance() {
        keys.validate(signed.time, signed.key_id, &signed.hash)?;
    }
    clock.advance_to(signed.time);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::RedbCatalog;

    fn keys_with(writes: Vec<Write>) -> ClusterKeys {
        let catalog = RedbCatalog::in_memory();
        catalog.apply(writes).unwrap();
        let keys = ClusterKeys::default();
        keys.load(&catalog);
        keys
    }

    /// `secs` seconds after a fixed time, at `increment`.
    fn at(secs: u32, increment: u32) -> Timestamp {
        Timestamp {
            time: 1_700_000_000 + secs,
            increment,
        }
    }

    #[test]
    fn a_signed_time_validates_and_a_forged_one_does_not() {
        let now = at(0, 3);
        let first = ClusterKeys::default().next_key(now, 3600).unwrap();
        let keys = keys_with(vec![first]);
        let (id, p) = keys.sign(now).expect("a key covers now");
        keys.validate(now, id, &p).unwrap();
        // The proof covers later increments in the same range, not another second.
        let later = at(0, 9);
        keys.validate(later, id, &p).unwrap();
        let next_second = at(1, 1);
        assert_eq!(
            keys.validate(next_second, id, &p).unwrap_err().code,
            Code::TimeProofMismatch
        );
        assert_eq!(
            keys.validate(now, id + 1, &p).unwrap_err().code,
            Code::KeyNotFound
        );
        let expired = at(7200, 1);
        assert!(keys.sign(expired).is_none());
    }

    #[test]
    fn two_keys_are_kept_ahead() {
        let now = at(0, 1);
        let first = ClusterKeys::default().next_key(now, 100).unwrap();
        let keys = keys_with(vec![first.clone()]);
        // Written by a later entry, so at a later cluster time.
        let then = at(0, 2);
        let second = keys.next_key(then, 100).expect("a second key");
        let keys = keys_with(vec![first, second]);
        assert!(keys.next_key(now, 100).is_none());
        let later = at(150, 1);
        assert!(
            keys.next_key(later, 100).is_some(),
            "the first key has expired"
        );
    }

    #[test]
    fn malformed_cluster_times_get_mongods_codes() {
        let hash = Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![0; 20],
        });
        let ts = Timestamp {
            time: 1,
            increment: 1,
        };
        let table: Vec<(Bson, Code)> = vec![
            (Bson::Int32(1), Code::TypeMismatch),
            (
                Bson::Document(doc! {"signature": {"hash": hash.clone(), "keyId": 1_i64}}),
                Code::NoSuchKey,
            ),
            (
                Bson::Document(
                    doc! {"clusterTime": 5, "signature": {"hash": hash.clone(), "keyId": 1_i64}},
                ),
                Code::TypeMismatch,
            ),
            (Bson::Document(doc! {"clusterTime": ts}), Code::NoSuchKey),
            (
                Bson::Document(doc! {"clusterTime": ts, "signature": {"keyId": 1_i64}}),
                Code::NoSuchKey,
            ),
            (
                Bson::Document(
                    doc! {"clusterTime": ts, "signature": {"hash": "x", "keyId": 1_i64}},
                ),
                Code::TypeMismatch,
            ),
            (
                Bson::Document(
                    doc! {"clusterTime": ts, "signature": {"hash": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 3] }, "keyId": 1_i64}},
                ),
                Code::UnsupportedFormat,
            ),
            (
                Bson::Document(doc! {"clusterTime": ts, "signature": {"hash": hash.clone()}}),
                Code::NoSuchKey,
            ),
            (
                Bson::Document(doc! {"clusterTime": ts, "signature": {"hash": hash, "keyId": "1"}}),
                Code::TypeMismatch,
            ),
        ];
        for (value, code) in table {
            let err = parse(&value)
                .err()
                .unwrap_or_else(|| panic!("{value} parsed"));
            assert_eq!(err.code, code, "{value}");
        }
    }
}
