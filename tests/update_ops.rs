//! The update language on documents in memory: each modifier's effect, field creation
//! order, no-op detection (`nModified`), type promotion, `_id` immutability, and a
//! table of bad inputs with mongod 7.0's codes and messages. Expected results are
//! those mongod's jstests (jstests/core/write/update/*.js) and its unit tests
//! (src/mongo/db/update/*_test.cpp) state.

use bson::{bson, doc, Bson, Document};
use ferrod::error::CommandError;
use ferrod::query::update::{MatchDetails, Update, UpdateContext, Updated};

fn ctx(is_insert: bool) -> UpdateContext {
    UpdateContext {
        let_vars: bson::Document::new(),
        now: bson::DateTime::from_millis(1_700_000_000_000),
        now_timestamp: bson::Timestamp {
            time: 1_700_000_000,
            increment: 1,
        },
        is_insert,
    }
}

fn run(doc: Document, update: Bson, position: Option<usize>) -> Result<Updated, CommandError> {
    let parsed = Update::parse(&update, None)?;
    let details = MatchDetails {
        array_position: position,
    };
    parsed.apply(&doc, Some(&details), &ctx(false))
}

fn updated(doc: Document, update: Bson) -> Document {
    match run(doc, update.clone(), None) {
        Ok(u) => u.doc,
        Err(e) => panic!("{update}: {e}"),
    }
}

fn modified(doc: Document, update: Bson) -> bool {
    run(doc, update, None).unwrap().modified
}

fn code_of(doc: Document, update: Bson) -> (i32, String) {
    match run(doc, update.clone(), None) {
        Ok(u) => panic!("{update} succeeded: {}", u.doc),
        Err(e) => (e.code.number(), e.message),
    }
}

#[test]
fn set_creates_paths_in_mongod_field_order() {
    // Update operators process new fields in lexicographic order, numeric names numerically.
    assert_eq!(
        updated(
            doc! {"_id": 1},
            bson!({"$set": {"b": 1, "a": 1, "c.y": 1, "c.x": 1}})
        ),
        doc! {"_id": 1, "a": 1, "b": 1, "c": {"x": 1, "y": 1}}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": {}},
            bson!({"$set": {"a.10": "d", "a.3": "c", "a.2": "b"}})
        ),
        doc! {"_id": 1, "a": {"2": "b", "3": "c", "10": "d"}}
    );
    // Existing fields keep their place.
    assert_eq!(
        updated(doc! {"_id": 1, "z": 1, "a": 1}, bson!({"$set": {"z": 2}})),
        doc! {"_id": 1, "z": 2, "a": 1}
    );
}

#[test]
fn set_pads_arrays_with_null() {
    assert_eq!(
        updated(doc! {"_id": 1, "a": [1]}, bson!({"$set": {"a.3": 4}})),
        doc! {"_id": 1, "a": [1, null, null, 4]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [{"b": 1}]},
            bson!({"$set": {"a.0.c": 2, "a.1.d": 3}})
        ),
        doc! {"_id": 1, "a": [{"b": 1, "c": 2}, {"d": 3}]}
    );
}

#[test]
fn set_noop_is_not_a_modification() {
    assert!(!modified(
        doc! {"_id": 1, "a": 1},
        bson!({"$set": {"a": 1}})
    ));
    // A different type is a change even when the values compare equal.
    assert!(modified(
        doc! {"_id": 1, "a": 1},
        bson!({"$set": {"a": 1.0}})
    ));
    assert!(!modified(doc! {"_id": 1}, bson!({"$unset": {"a": 1}})));
    assert!(!modified(doc! {"_id": 1, "a": 1}, bson!({"$set": {}})));
    assert!(!modified(
        doc! {"_id": 1, "a": 1},
        bson!({"$set": {"_id": 1}})
    ));
}

#[test]
fn unset_removes_fields_and_nulls_array_elements() {
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}},
            bson!({"$unset": {"a": "", "b.c": 1}})
        ),
        doc! {"_id": 1, "b": {"d": 2}}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 3]},
            bson!({"$unset": {"a.1": 1}})
        ),
        doc! {"_id": 1, "a": [1, null, 3]}
    );
    // Paths through scalars are no-ops, not errors.
    assert_eq!(
        updated(doc! {"_id": 1, "a": 1}, bson!({"$unset": {"a.b": 1}})),
        doc! {"_id": 1, "a": 1}
    );
}

#[test]
fn inc_and_mul_follow_safenum_promotion() {
    assert_eq!(
        updated(doc! {"_id": 1, "a": i32::MAX}, bson!({"$inc": {"a": 1}})),
        doc! {"_id": 1, "a": (i32::MAX as i64) + 1}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 1},
            bson!({"$inc": {"a": 0.5, "b": 2i64}})
        ),
        doc! {"_id": 1, "a": 1.5, "b": 2i64}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 3},
            bson!({"$mul": {"a": 2i64, "b": 5.5}})
        ),
        doc! {"_id": 1, "a": 6i64, "b": 0.0}
    );
    assert_eq!(
        updated(doc! {"_id": 1}, bson!({"$mul": {"b": 7}})),
        doc! {"_id": 1, "b": 0}
    );
    assert!(!modified(
        doc! {"_id": 1, "a": 5},
        bson!({"$inc": {"a": 0}})
    ));
    assert!(!modified(
        doc! {"_id": 1, "a": 5},
        bson!({"$mul": {"a": 1}})
    ));
    // int32 * int64 widens even when the value is unchanged: a modification.
    assert!(modified(
        doc! {"_id": 1, "a": 5},
        bson!({"$mul": {"a": 1i64}})
    ));
    let (code, msg) = code_of(
        doc! {"_id": "int64-max", "v": i64::MAX},
        bson!({"$inc": {"v": 1}}),
    );
    assert_eq!(code, 2);
    assert_eq!(
        msg,
        "Failed to apply $inc operations to current value ((NumberLong)9223372036854775807) for document {_id: \"int64-max\"}"
    );
    let (code, msg) = code_of(doc! {"_id": "x", "bar": "s"}, bson!({"$inc": {"bar": 1}}));
    assert_eq!(code, 14);
    assert_eq!(
        msg,
        "Cannot apply $inc to a value of non-numeric type. {_id: \"x\"} has the field 'bar' of non-numeric type string"
    );
}

#[test]
fn min_max_compare_across_types() {
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 5, "b": 5},
            bson!({"$min": {"a": 3.5, "b": 7}, "$max": {"c": 1}})
        ),
        doc! {"_id": 1, "a": 3.5, "b": 5, "c": 1}
    );
    // Numbers sort before strings.
    assert_eq!(
        updated(doc! {"_id": 1, "a": 5}, bson!({"$max": {"a": "x"}})),
        doc! {"_id": 1, "a": "x"}
    );
    assert!(!modified(
        doc! {"_id": 1, "a": 5},
        bson!({"$max": {"a": 5.0}})
    ));
}

#[test]
fn current_date_sets_dates_and_timestamps() {
    let out = updated(
        doc! {"_id": 1},
        bson!({"$currentDate": {"d": true, "t": {"$type": "timestamp"}, "e": {"$type": "date"}}}),
    );
    assert_eq!(
        out.get_datetime("d").unwrap().timestamp_millis(),
        1_700_000_000_000
    );
    assert_eq!(
        out.get_datetime("e").unwrap().timestamp_millis(),
        1_700_000_000_000
    );
    assert_eq!(out.get_timestamp("t").unwrap().time, 1_700_000_000);
}

#[test]
fn rename_moves_values() {
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 1, "b": {"c": 2}},
            bson!({"$rename": {"a": "z", "b.c": "b.d"}})
        ),
        doc! {"_id": 1, "b": {"d": 2}, "z": 1}
    );
    // A missing source leaves the document alone.
    assert!(!modified(
        doc! {"_id": 1, "a": 1},
        bson!({"$rename": {"x": "y"}})
    ));
    let (code, msg) = code_of(
        doc! {"_id": 1, "a": [{"b": 1}]},
        bson!({"$rename": {"a.0.b": "c"}}),
    );
    assert_eq!(code, 2);
    assert_eq!(
        msg,
        "The source field cannot be an array element, 'a.0.b' in doc with _id: 1 has an array field called 'a'"
    );
    let (code, msg) = code_of(
        doc! {"_id": 1, "c": 5, "a": [{"b": 1}]},
        bson!({"$rename": {"c": "a.0.b"}}),
    );
    assert_eq!(code, 2);
    assert_eq!(
        msg,
        "The destination field cannot be an array element, 'a.0.b' in doc with _id: 1 has an array field called 'a'"
    );
    let (code, _) = code_of(
        doc! {"_id": 1, "c": 1, "a": [1]},
        bson!({"$rename": {"c": "a.b"}}),
    );
    assert_eq!(code, 2, "the destination is inside an array");
    let (code, msg) = code_of(doc! {"_id": 1, "a": 1}, bson!({"$rename": {"a.b": "c"}}));
    assert_eq!(code, 28);
    assert_eq!(
        msg,
        "cannot use the part (b of a.b) to traverse the element ({a: 1})"
    );
    let (code, msg) = code_of(doc! {"_id": 1}, bson!({"$rename": {"_id": "x"}}));
    assert_eq!(code, 66);
    assert_eq!(
        msg,
        "Unsetting the path '_id' using $rename would modify the immutable field '_id'"
    );
    // An existing array at the destination may be overwritten.
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 1, "b": [1]},
            bson!({"$rename": {"a": "b"}})
        ),
        doc! {"_id": 1, "b": 1}
    );
}

#[test]
fn push_with_each_slice_sort_position() {
    assert_eq!(
        updated(doc! {"_id": 1, "a": [1, 2]}, bson!({"$push": {"a": 3}})),
        doc! {"_id": 1, "a": [1, 2, 3]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1},
            bson!({"$push": {"a": {"$each": [3, 1, 2], "$sort": 1}}})
        ),
        doc! {"_id": 1, "a": [1, 2, 3]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2]},
            bson!({"$push": {"a": {"$each": [8, 9], "$position": 1}}})
        ),
        doc! {"_id": 1, "a": [1, 8, 9, 2]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 3]},
            bson!({"$push": {"a": {"$each": [4, 5], "$position": -1}}})
        ),
        doc! {"_id": 1, "a": [1, 2, 4, 5, 3]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 3]},
            bson!({"$push": {"a": {"$each": [4], "$slice": -2}}})
        ),
        doc! {"_id": 1, "a": [3, 4]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "s": [{"n": 3, "x": 1}, {"n": 1}, {"x": 2}]},
            bson!({"$push": {"s": {"$each": [{"n": 2}], "$sort": {"n": -1}, "$slice": 3}}})
        ),
        doc! {"_id": 1, "s": [{"n": 3, "x": 1}, {"n": 2}, {"n": 1}]}
    );
    // A $push of an object without $each pushes the object itself.
    assert_eq!(
        updated(doc! {"_id": 1}, bson!({"$push": {"a": {"b": 1}}})),
        doc! {"_id": 1, "a": [{"b": 1}]}
    );
    // $each: [] with nothing to slice is a no-op.
    assert!(!modified(
        doc! {"_id": 1, "a": [1]},
        bson!({"$push": {"a": {"$each": []}}})
    ));
}

#[test]
fn add_to_set_pop_pull_all_bit() {
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2]},
            bson!({"$addToSet": {"a": {"$each": [2, 3, 3, 4.0]}, "b": 1}})
        ),
        doc! {"_id": 1, "a": [1, 2, 3, 4.0], "b": [1]}
    );
    // Numbers compare as numbers: 2.0 is already there.
    assert!(!modified(
        doc! {"_id": 1, "a": [1, 2]},
        bson!({"$addToSet": {"a": 2.0}})
    ));
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 3], "b": [1, 2]},
            bson!({"$pop": {"a": 1, "b": -1}})
        ),
        doc! {"_id": 1, "a": [1, 2], "b": [2]}
    );
    assert!(!modified(
        doc! {"_id": 1, "a": []},
        bson!({"$pop": {"a": 1}})
    ));
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 1, 3.0, "3"]},
            bson!({"$pullAll": {"a": [1, 3]}})
        ),
        doc! {"_id": 1, "a": [2, "3"]}
    );
    assert_eq!(
        updated(doc! {"_id": 1, "a": [1, 2, 3]}, bson!({"$pull": {"a": 2}})),
        doc! {"_id": 1, "a": [1, 3]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": 13, "b": 1i64},
            bson!({"$bit": {"a": {"and": 10, "or": 1}, "b": {"xor": 3}, "c": {"or": 5}}})
        ),
        doc! {"_id": 1, "a": 9, "b": 2i64, "c": 5}
    );
}

#[test]
fn positional_uses_the_matched_index() {
    let out = run(
        doc! {"_id": 1, "a": [{"b": 1}, {"b": 2}]},
        bson!({"$set": {"a.$.b": 9}}),
        Some(1),
    )
    .unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "a": [{"b": 1}, {"b": 9}]});
    let e = run(doc! {"_id": 1, "a": [1]}, bson!({"$set": {"a.$": 9}}), None).unwrap_err();
    assert_eq!(e.code.number(), 2);
    assert_eq!(
        e.message,
        "The positional operator did not find the match needed from the query."
    );
}

#[test]
fn all_positional_updates_every_element() {
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [1, 2, 3]},
            bson!({"$inc": {"a.$[]": 10}})
        ),
        doc! {"_id": 1, "a": [11, 12, 13]}
    );
    assert_eq!(
        updated(
            doc! {"_id": 1, "a": [{"b": [1, 2]}, {"b": [3]}]},
            bson!({"$set": {"a.$[].b.$[]": 0}})
        ),
        doc! {"_id": 1, "a": [{"b": [0, 0]}, {"b": [0]}]}
    );
    let (code, msg) = code_of(doc! {"_id": 1}, bson!({"$set": {"a.$[]": 1}}));
    assert_eq!(
        (code, msg.as_str()),
        (
            2,
            "The path 'a' must exist in the document in order to apply array updates."
        )
    );
    let (code, msg) = code_of(doc! {"_id": 1, "a": 5}, bson!({"$set": {"a.$[]": 1}}));
    assert_eq!(
        (code, msg.as_str()),
        (2, "Cannot apply array updates to non-array element a: 5")
    );
}

#[test]
fn id_is_immutable_on_update_but_settable_on_insert() {
    let (code, msg) = code_of(doc! {"_id": 1, "a": 1}, bson!({"$set": {"_id": 2}}));
    assert_eq!(code, 66);
    assert_eq!(
        msg,
        "Performing an update on the path '_id' would modify the immutable field '_id'"
    );
    let (code, _) = code_of(doc! {"_id": {"x": 1}}, bson!({"$set": {"_id.x": 2}}));
    assert_eq!(code, 66);
    let (code, _) = code_of(doc! {"_id": 1}, bson!({"$unset": {"_id": 1}}));
    assert_eq!(code, 66);
    let (code, _) = code_of(doc! {"_id": 1}, bson!({"$inc": {"_id": 1}}));
    assert_eq!(code, 66);
    let insert = Update::parse(&bson!({"$set": {"_id": 7, "a": 1}}), None)
        .unwrap()
        .apply(&doc! {}, None, &ctx(true))
        .unwrap();
    assert_eq!(insert.doc, doc! {"_id": 7, "a": 1});
}

#[test]
fn set_on_insert_only_on_insert() {
    let u = Update::parse(&bson!({"$setOnInsert": {"a": 1}, "$set": {"b": 2}}), None).unwrap();
    let on_update = u.apply(&doc! {"_id": 1}, None, &ctx(false)).unwrap();
    assert_eq!(on_update.doc, doc! {"_id": 1, "b": 2});
    let on_insert = u.apply(&doc! {"_id": 1}, None, &ctx(true)).unwrap();
    assert_eq!(on_insert.doc, doc! {"_id": 1, "a": 1, "b": 2});
}

#[test]
fn replacement_keeps_id() {
    let u = Update::parse(&bson!({"b": 2, "c": 3}), None).unwrap();
    assert!(u.is_replacement());
    let out = u
        .apply(&doc! {"_id": 1, "a": 1}, None, &ctx(false))
        .unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "b": 2, "c": 3});
    assert!(out.modified);
    let same = Update::parse(&bson!({"_id": 1, "a": 1}), None).unwrap();
    assert!(
        !same
            .apply(&doc! {"_id": 1, "a": 1}, None, &ctx(false))
            .unwrap()
            .modified
    );
    let changed = Update::parse(&bson!({"_id": 2}), None).unwrap();
    let e = changed
        .apply(&doc! {"_id": 1}, None, &ctx(false))
        .unwrap_err();
    assert_eq!(e.code.number(), 66);
    assert_eq!(
        e.message,
        "After applying the update, the (immutable) field '_id' was found to have been altered to _id: 2"
    );
}

#[test]
fn pipeline_updates_set_unset_replace() {
    let u = Update::parse(
        &bson!([{"$set": {"b": "$a", "c": {"$literal": "$x"}}}, {"$unset": "a"}]),
        None,
    )
    .unwrap();
    let out = u
        .apply(&doc! {"_id": 1, "a": 5}, None, &ctx(false))
        .unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "b": 5, "c": "$x"});
    // A sub-object adds fields inside the existing one.
    let nested = Update::parse(&bson!([{"$set": {"s": {"y": 2}}}]), None).unwrap();
    let out = nested
        .apply(&doc! {"_id": 1, "s": {"x": 1}}, None, &ctx(false))
        .unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "s": {"x": 1, "y": 2}});
    let r = Update::parse(&bson!([{"$replaceWith": "$sub"}]), None).unwrap();
    let out = r
        .apply(&doc! {"_id": 1, "sub": {"z": 1}}, None, &ctx(false))
        .unwrap();
    assert_eq!(out.doc, doc! {"_id": 1, "z": 1});
}

/// Bad inputs with mongod's codes and messages: (update, document, code, message).
#[test]
fn bad_input_table() {
    let cases: Vec<(Bson, Document, i32, &str)> = vec![
        (
            bson!({"$foo": {"a": 1}}),
            doc! {"_id": 1},
            9,
            "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update specified as an array",
        ),
        (
            bson!({"$set": {"a": 1}, "b": 1}),
            doc! {"_id": 1},
            9,
            "Unknown modifier: b. Expected a valid update modifier or pipeline-style update specified as an array",
        ),
        (
            bson!({"$set": 1}),
            doc! {"_id": 1},
            9,
            "Modifiers operate on fields but we found type int instead. For example: {$mod: {<field>: ...}} not {$set: 1}",
        ),
        (
            bson!({"$set": {"a": 1}, "$inc": {"a": 1}}),
            doc! {"_id": 1},
            40,
            "Updating the path 'a' would create a conflict at 'a'",
        ),
        (
            bson!({"$set": {"a.b": 1}, "$unset": {"a": 1}}),
            doc! {"_id": 1},
            40,
            "Updating the path 'a' would create a conflict at 'a'",
        ),
        (
            bson!({"$set": {"a": 1}, "$unset": {"a.b": 1}}),
            doc! {"_id": 1},
            40,
            "Updating the path 'a.b' would create a conflict at 'a'",
        ),
        (
            bson!({"$rename": {"a": "b"}, "$set": {"b": 1}}),
            doc! {"_id": 1},
            40,
            "Updating the path 'b' would create a conflict at 'b'",
        ),
        (bson!({"$set": {"": 1}}), doc! {"_id": 1}, 56, "An empty update path is not valid."),
        (
            bson!({"$set": {"a..b": 1}}),
            doc! {"_id": 1},
            56,
            "The update path 'a..b' contains an empty field name, which is not allowed.",
        ),
        (
            bson!({"$set": {"a.b": 1}}),
            doc! {"_id": 1, "a": 1},
            28,
            "Cannot create field 'b' in element {a: 1}",
        ),
        (
            bson!({"$set": {"a.x": 1}}),
            doc! {"_id": 1, "a": [1]},
            28,
            "Cannot create field 'x' in element {a: [ 1 ]}",
        ),
        (
            bson!({"$inc": {"a": "x"}}),
            doc! {"_id": 1},
            14,
            "Cannot increment with non-numeric argument: {a: \"x\"}",
        ),
        (
            bson!({"$mul": {"a": "x"}}),
            doc! {"_id": 1},
            14,
            "Cannot multiply with non-numeric argument: {a: \"x\"}",
        ),
        (
            bson!({"$push": {"a": 1}}),
            doc! {"_id": 1, "a": 1},
            2,
            "The field 'a' must be an array but is of type int in document {_id: 1}",
        ),
        (
            bson!({"$push": {"a": {"$each": 1}}}),
            doc! {"_id": 1},
            2,
            "The argument to $each in $push must be an array but it was of type: int",
        ),
        (
            bson!({"$push": {"a": {"$each": [1], "$foo": 1}}}),
            doc! {"_id": 1},
            2,
            "Unrecognized clause in $push: $foo",
        ),
        (
            bson!({"$push": {"a": {"$each": [1], "$sort": 2}}}),
            doc! {"_id": 1},
            2,
            "The $sort element value must be either 1 or -1",
        ),
        (
            bson!({"$push": {"a": {"$each": [1], "$slice": "x"}}}),
            doc! {"_id": 1},
            2,
            "The value for $slice must be an integer value but was given type: string",
        ),
        (
            bson!({"$addToSet": {"a": 1}}),
            doc! {"_id": 1, "a": 1},
            2,
            "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type int",
        ),
        (bson!({"$pop": {"a": "x"}}), doc! {"_id": 1}, 9, "Expected a number in: a: \"x\""),
        (bson!({"$pop": {"a": 2}}), doc! {"_id": 1}, 9, "$pop expects 1 or -1, found: 2"),
        (
            bson!({"$pop": {"a": 1}}),
            doc! {"_id": 1, "a": 1},
            14,
            "Path 'a' contains an element of non-array type 'int'",
        ),
        (
            bson!({"$pullAll": {"a": 1}}),
            doc! {"_id": 1},
            2,
            "$pullAll requires an array argument but was given a int",
        ),
        (
            bson!({"$pullAll": {"a": [1]}}),
            doc! {"_id": 1, "a": 1},
            2,
            "Cannot apply $pullAll to a non-array value",
        ),
        (
            bson!({"$rename": {"a": 1}}),
            doc! {"_id": 1},
            2,
            "The 'to' field for $rename must be a string: a: 1",
        ),
        (
            bson!({"$rename": {"a": "a"}}),
            doc! {"_id": 1},
            2,
            "The source and target field for $rename must differ: a: \"a\"",
        ),
        (
            bson!({"$rename": {"a": "a.b"}}),
            doc! {"_id": 1},
            2,
            "The source and target field for $rename must not be on the same path: a: \"a.b\"",
        ),
        (
            bson!({"$rename": {"a.$": "b"}}),
            doc! {"_id": 1},
            2,
            "The source field for $rename may not be dynamic: a.$",
        ),
        (
            bson!({"$currentDate": {"a": 1}}),
            doc! {"_id": 1},
            2,
            "int is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({$type: 'timestamp/date'}).",
        ),
        (
            bson!({"$currentDate": {"a": {"$type": "x"}}}),
            doc! {"_id": 1},
            2,
            "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}",
        ),
        (
            bson!({"$bit": {"a": 1}}),
            doc! {"_id": 1},
            2,
            "The $bit modifier is not compatible with a int. You must pass in an embedded document: {$bit: {field: {and/or/xor: #}}",
        ),
        (
            bson!({"$bit": {"a": {"nand": 1}}}),
            doc! {"_id": 1},
            2,
            "The $bit modifier only supports 'and', 'or', and 'xor', not 'nand' which is an unknown operator: {nand: 1}",
        ),
        (
            bson!({"$bit": {"a": {"and": 1.5}}}),
            doc! {"_id": 1},
            2,
            "The $bit modifier field must be an Integer(32/64 bit); a 'double' is not supported here: {and: 1.5}",
        ),
        (
            bson!({"$bit": {"a": {"and": 1}}}),
            doc! {"_id": 1, "a": 1.0},
            2,
            "Cannot apply $bit to a value of non-integral type.{_id: 1} has the field a of non-integer type double",
        ),
        (
            bson!({"$set": {"a.$.b.$": 1}}),
            doc! {"_id": 1},
            2,
            "Too many positional (i.e. '$') elements found in path 'a.$.b.$'",
        ),
        (
            bson!({"$set": {"$.a": 1}}),
            doc! {"_id": 1},
            2,
            "Cannot have positional (i.e. '$') element in the first position in path '$.a'",
        ),
        (
            bson!({"$set": {"$[].a": 1}}),
            doc! {"_id": 1},
            2,
            "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '$[].a'",
        ),
        (
            bson!({"$set": {"a.$[x]": 1}}),
            doc! {"_id": 1},
            2,
            "No array filter found for identifier 'x' in path 'a.$[x]'",
        ),
        (
            bson!({"$set": {"$a": 1}}),
            doc! {"_id": 1},
            52,
            "The dollar ($) prefixed field '$a' in '$a' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.",
        ),
        (
            bson!({"a": 1, "$set": {"b": 1}}),
            doc! {"_id": 1},
            52,
            "The dollar ($) prefixed field '$set' in '$set' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.",
        ),
        (
            bson!([{"$match": {"a": 1}}]),
            doc! {"_id": 1},
            72,
            "$match is not allowed to be used within an update",
        ),
        (
            bson!([{"$foo": {}}]),
            doc! {"_id": 1},
            40324,
            "Unrecognized pipeline stage name: '$foo'",
        ),
        (
            bson!([{"$set": {"a": 1}, "$unset": "b"}]),
            doc! {"_id": 1},
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        ),
        (
            bson!({"$set": {"a.5000000": 1}}),
            doc! {"_id": 1, "a": []},
            34,
            "can't backfill more than 1500000 elements",
        ),
    ];
    let mut failures = Vec::new();
    for (update, doc, code, message) in cases {
        match run(doc, update.clone(), None) {
            Ok(u) => failures.push(format!("{update}: succeeded with {}", u.doc)),
            Err(e) if e.code.number() != code || e.message != message => failures.push(format!(
                "{update}: got {} {:?}, want {code} {message:?}",
                e.code.number(),
                e.message
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn too_deep_results_are_refused() {
    let mut deep = Bson::Int32(1);
    for _ in 0..100 {
        deep = Bson::Document(doc! {"x": deep});
    }
    let (code, msg) = code_of(doc! {"_id": 1}, bson!({"$set": {"a": deep}}));
    assert_eq!(code, 15);
    assert_eq!(msg, "Document exceeds maximum nesting depth of 100");
}
