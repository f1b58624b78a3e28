//! The `writeConcern` argument of commands that write, parsed and checked as mongod does,
//! and the `writeConcernError` a reply carries when the wait for it did not succeed.

use crate::error::{bad_value, type_mismatch, whole_number, Code, CommandError, CommandResult};
use bson::{doc, Bson, Document};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum W {
    /// `w: <n>`: acknowledged by n members (0: not acknowledged at all).
    Nodes(i64),
    /// `w: "majority"`.
    Majority,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteConcern {
    pub w: W,
    /// `wtimeout` (0 or absent: wait without limit).
    pub wtimeout: Option<Duration>,
    /// Whether the client gave it (`provenance` in errInfo).
    pub client_supplied: bool,
}

impl WriteConcern {
    /// What user-management commands use when the client gives none (mongod's default
    /// for them: majority).
    pub fn majority_default() -> WriteConcern {
        WriteConcern {
            w: W::Majority,
            wtimeout: None,
            client_supplied: false,
        }
    }

    pub fn to_document(&self) -> Document {
        let mut d = Document::new();
        match &self.w {
            W::Majority => d.insert("w", "majority"),
            W::Nodes(n) => d.insert("w", *n as i32),
        };
        d.insert(
            "wtimeout",
            self.wtimeout.map(|t| t.as_millis() as i32).unwrap_or(0),
        );
        d.insert(
            "provenance",
            if self.client_supplied {
                "clientSupplied"
            } else {
                "implicitDefault"
            },
        );
        d
    }

    /// The `writeConcernError` of a wait that timed out.
    pub fn timeout_error(&self) -> Document {
        doc! {
            "code": Code::WriteConcernFailed.number(),
            "codeName": Code::WriteConcernFailed.name(),
            "errmsg": "waiting for replication timed out",
            "errInfo": {"wtimeout": true, "writeConcern": self.to_document()},
        }
    }
}

fn failed_to_parse(msg: impl Into<String>) -> CommandError {
    CommandError::new(Code::FailedToParse, msg)
}

/// Reads `writeConcern` from a command; `None` when it is absent. `standalone` applies
/// the standalone rule (no `w` above 1).
pub fn parse(cmd: &Document, standalone: bool) -> CommandResult<Option<WriteConcern>> {
    let wc = match cmd.get("writeConcern") {
        None => return Ok(None),
        Some(Bson::Document(d)) => d,
        Some(other) => return Err(type_mismatch("writeConcern", other, "object")),
    };
    let mut concern = WriteConcern {
        w: W::Nodes(1),
        wtimeout: None,
        client_supplied: true,
    };
    for (key, value) in wc {
        match key.as_str() {
            "w" => {
                concern.w = match value {
                    Bson::String(s) if s == "majority" => W::Majority,
                    Bson::String(s) => {
                        return Err(CommandError::new(
                            Code::UnknownReplWriteConcern,
                            format!("Unrecognized write concern mode: {s}"),
                        ))
                    }
                    v => match whole_number(v) {
                        Some(n) if n < 0 => {
                            return Err(failed_to_parse("w cannot be a negative value"))
                        }
                        Some(n) if n > 50 => {
                            return Err(failed_to_parse("w cannot be greater than 50"))
                        }
                        Some(n) => W::Nodes(n),
                        None => {
                            return Err(failed_to_parse("w has to be a number, string, or object"))
                        }
                    },
                }
            }
            "wtimeout" | "wtimeoutMS" => {
                let ms = whole_number(value)
                    .ok_or_else(|| failed_to_parse("wtimeout must be a number"))?;
                concern.wtimeout = (ms > 0).then(|| Duration::from_millis(ms as u64));
            }
            "j" | "fsync" => {
                if !matches!(value, Bson::Boolean(_)) && whole_number(value).is_none() {
                    return Err(failed_to_parse(format!("{key} must be a boolean")));
                }
            }
            // What mongod itself adds when it forwards a write concern.
            "provenance" | "getLastError" => {}
            other => {
                return Err(failed_to_parse(format!(
                    "unrecognized write concern field: {other}"
                )))
            }
        }
    }
    // mongod's WriteConcernOptions::parse: both sync modes at once is a contradiction.
    let truthy = |key: &str| {
        wc.get(key).is_some_and(|v| match v {
            Bson::Boolean(b) => *b,
            v => whole_number(v).is_some_and(|n| n != 0),
        })
    };
    if truthy("j") && truthy("fsync") {
        return Err(failed_to_parse(
            "fsync and j options cannot be used together",
        ));
    }
    if standalone && matches!(concern.w, W::Nodes(n) if n > 1) {
        return Err(bad_value("cannot use 'w' > 1 on a standalone"));
    }
    Ok(Some(concern))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad write concerns and the code mongod answers each with.
    #[test]
    fn bad_write_concerns_get_mongods_codes() {
        let table: &[(Bson, bool, Code)] = &[
            (Bson::Int32(1), false, Code::TypeMismatch),
            (Bson::Document(doc! {"w": -1}), false, Code::FailedToParse),
            (Bson::Document(doc! {"w": 51}), false, Code::FailedToParse),
            (Bson::Document(doc! {"w": true}), false, Code::FailedToParse),
            (
                Bson::Document(doc! {"w": "nosuchtag"}),
                false,
                Code::UnknownReplWriteConcern,
            ),
            (
                Bson::Document(doc! {"w": 1, "wtimeout": "x"}),
                false,
                Code::FailedToParse,
            ),
            (
                Bson::Document(doc! {"w": 1, "bogus": 1}),
                false,
                Code::FailedToParse,
            ),
            (Bson::Document(doc! {"w": 2}), true, Code::BadValue),
            (
                Bson::Document(doc! {"j": true, "fsync": 1}),
                false,
                Code::FailedToParse,
            ),
        ];
        for (wc, standalone, code) in table {
            let cmd = doc! {"createUser": "a", "writeConcern": wc.clone()};
            let err = parse(&cmd, *standalone).expect_err(&format!("{wc} must be refused"));
            assert_eq!(err.code, *code, "{wc}");
        }
    }

    #[test]
    fn good_write_concerns_parse() {
        let cmd = doc! {"x": 1, "writeConcern": {"w": "majority", "wtimeout": 500}};
        let wc = parse(&cmd, false).unwrap().unwrap();
        assert_eq!(wc.w, W::Majority);
        assert_eq!(wc.wtimeout, Some(Duration::from_millis(500)));
        assert_eq!(parse(&doc! {"x": 1}, true).unwrap(), None);
        let w2 = parse(&doc! {"x": 1, "writeConcern": {"w": 2}}, false)
            .unwrap()
            .unwrap();
        assert_eq!(w2.w, W::Nodes(2));
    }
}
