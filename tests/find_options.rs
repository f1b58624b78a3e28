//! find's not-yet-implemented options as mongod's IDL reads them: their defaults
//! (`returnKey: false`, `showRecordId: false`, `tailable: false`, `awaitData: false`,
//! `min: {}`, `max: {}`) are no-ops and answer; values with an effect are refused by name
//! (2), wrong types with 14.

mod common;

use bson::{doc, Document};
use common::Ferrod;

#[test]
fn default_values_answer_and_others_are_refused() {
    let server = Ferrod::start(&[]);
    server.command(doc! {"insert": "c", "documents": [{"_id": 1}], "$db": "t"});
    let find = |extra: Document| {
        let mut cmd = doc! {"find": "c", "$db": "t"};
        cmd.extend(extra);
        server.command(cmd)
    };
    for noop in [
        doc! {"returnKey": false},
        doc! {"showRecordId": false},
        doc! {"tailable": false, "awaitData": false},
        doc! {"min": {}, "max": {}},
    ] {
        let reply = find(noop.clone());
        let batch = reply
            .get_document("cursor")
            .unwrap_or_else(|_| panic!("{noop}: {reply:?}"))
            .get_array("firstBatch")
            .unwrap();
        assert_eq!(batch.len(), 1, "{noop}: {reply:?}");
    }
    for (refused, code) in [
        (doc! {"returnKey": true}, 2),
        (doc! {"showRecordId": true}, 2),
        (doc! {"tailable": true}, 2),
        (doc! {"min": {"a": 1}, "hint": {"a": 1}}, 2),
        (doc! {"max": {"a": 1}, "hint": {"a": 1}}, 2),
        (doc! {"returnKey": "yes"}, 14),
        (doc! {"min": 1}, 14),
    ] {
        let reply = find(refused.clone());
        assert_eq!(
            reply.get_i32("code").ok(),
            Some(code),
            "{refused}: {reply:?}"
        );
    }
}
