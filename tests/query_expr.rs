//! The aggregation expression evaluator as a library: results as mongod documents them
//! (the operators' reference pages and jstests/aggregation/expressions/*), and a table
//! of bad expressions with mongod's codes.

use bson::{bson, doc, Bson, Document};
use ferrod::query::expr::Expr;

fn eval(e: Bson, root: &Document) -> Bson {
    Expr::parse(&e)
        .unwrap_or_else(|err| panic!("{e} does not parse: {err}"))
        .evaluate(root, &doc! {})
        .unwrap_or_else(|err| panic!("{e} fails: {err}"))
}

fn check(root: Document, cases: Vec<(Bson, Bson)>) {
    for (e, expected) in cases {
        let got = eval(e.clone(), &root);
        assert_eq!(got, expected, "{e} on {root}");
    }
}

#[test]
fn paths_variables_literals() {
    let root = doc! {"a": {"b": 1}, "arr": [{"x": 1}, {"y": 2}, {"x": [3]}, 4], "s": "str"};
    check(
        root,
        vec![
            (bson!("$a.b"), bson!(1)),
            (bson!("$arr.x"), bson!([1, [3]])),
            (bson!("$missing"), Bson::Null),
            (bson!("$$ROOT.s"), bson!("str")),
            (bson!("$$CURRENT.a"), bson!({"b": 1})),
            (bson!({"$literal": "$a"}), bson!("$a")),
            (
                bson!({"x": "$s", "y": {"z": 1}}),
                bson!({"x": "str", "y": {"z": 1}}),
            ),
            (bson!({"x": "$nope"}), bson!({})),
            (bson!(["$s", "$nope"]), bson!(["str", null])),
            (
                bson!({"$let": {"vars": {"v": 2}, "in": {"$multiply": ["$$v", "$a.b"]}}}),
                bson!(2),
            ),
            (bson!({"$type": "$nope"}), bson!("missing")),
            (bson!({"$type": "$a.b"}), bson!("int")),
        ],
    );
    let e = Expr::parse(&bson!("$$x")).unwrap();
    assert_eq!(e.evaluate(&doc! {}, &doc! {"x": 7}).unwrap(), bson!(7));
    assert_eq!(
        e.evaluate(&doc! {}, &doc! {}).unwrap_err().code.number(),
        17276
    );
}

#[test]
fn arithmetic_keeps_mongods_types() {
    check(
        doc! {"i": 2, "l": 3i64, "d": 1.5, "date": bson::DateTime::from_millis(1000)},
        vec![
            (bson!({"$add": [1, 2]}), bson!(3)),
            (bson!({"$add": ["$i", "$l"]}), bson!(5i64)),
            (bson!({"$add": ["$i", "$d"]}), bson!(3.5)),
            (bson!({"$add": [2147483647, 1]}), bson!(2147483648i64)),
            (
                bson!({"$add": ["$date", 500]}),
                Bson::DateTime(bson::DateTime::from_millis(1500)),
            ),
            (bson!({"$add": [1, null]}), Bson::Null),
            (bson!({"$subtract": ["$date", "$date"]}), bson!(0i64)),
            (bson!({"$multiply": [2, 3, 1.5]}), bson!(9.0)),
            (bson!({"$divide": [7, 2]}), bson!(3.5)),
            (bson!({"$divide": [6, 3]}), bson!(2.0)),
            (bson!({"$mod": [7, 3]}), bson!(1)),
            (bson!({"$mod": [-7, 3]}), bson!(-1)),
            (bson!({"$abs": -3}), bson!(3)),
            (bson!({"$ceil": 1.2}), bson!(2.0)),
            (bson!({"$floor": -1.2}), bson!(-2.0)),
            (bson!({"$round": [2.5, 0]}), bson!(2.0)),
            (bson!({"$round": [3.5]}), bson!(4.0)),
            (bson!({"$round": [1234, -2]}), bson!(1200)),
            (bson!({"$round": [1e300, 99]}), bson!(1e300)),
            (bson!({"$trunc": [1.789, 1]}), bson!(1.7)),
            (bson!({"$sqrt": 16}), bson!(4.0)),
            (bson!({"$pow": [2, 10]}), bson!(1024)),
            (bson!({"$pow": [2, -1]}), bson!(0.5)),
            (bson!({"$exp": 0}), bson!(1.0)),
            (bson!({"$ln": 1}), bson!(0.0)),
            (bson!({"$log10": 100}), bson!(2.0)),
            (bson!({"$log": [8, 2]}), bson!(3.0)),
        ],
    );
}

#[test]
fn comparison_boolean_conditional() {
    check(
        doc! {"a": 1, "n": null},
        vec![
            (bson!({"$eq": ["$a", 1.0]}), bson!(true)),
            (bson!({"$gt": ["$a", "x"]}), bson!(false)),
            (bson!({"$lt": ["$nope", null]}), bson!(true)),
            (bson!({"$cmp": [2, 1]}), bson!(1)),
            (bson!({"$cmp": ["a", "b"]}), bson!(-1)),
            (bson!({"$and": [1, "x", []]}), bson!(true)),
            (bson!({"$and": [1, 0]}), bson!(false)),
            (bson!({"$or": [null, "$nope"]}), bson!(false)),
            (bson!({"$not": [0]}), bson!(true)),
            (
                bson!({"$cond": [{"$gt": ["$a", 0]}, "pos", "neg"]}),
                bson!("pos"),
            ),
            (
                bson!({"$cond": {"if": false, "then": 1, "else": 2}}),
                bson!(2),
            ),
            (bson!({"$ifNull": ["$n", "$nope", "d"]}), bson!("d")),
            (bson!({"$ifNull": ["$a", "d"]}), bson!(1)),
            (
                bson!({"$switch": {"branches": [{"case": {"$eq": ["$a", 2]}, "then": "two"}, {"case": {"$eq": ["$a", 1]}, "then": "one"}], "default": "other"}}),
                bson!("one"),
            ),
        ],
    );
}

#[test]
fn strings() {
    check(
        doc! {"s": "Hello World", "u": "héllo"},
        vec![
            (bson!({"$concat": ["$s", "!"]}), bson!("Hello World!")),
            (bson!({"$concat": ["$s", null]}), Bson::Null),
            (bson!({"$substr": ["$s", 0, 5]}), bson!("Hello")),
            (bson!({"$substrBytes": ["$s", 6, -1]}), bson!("World")),
            (bson!({"$substrCP": ["$u", 1, 2]}), bson!("él")),
            (bson!({"$toLower": "$s"}), bson!("hello world")),
            (bson!({"$toUpper": "$s"}), bson!("HELLO WORLD")),
            (bson!({"$toUpper": null}), bson!("")),
            (bson!({"$strLenBytes": "$u"}), bson!(6)),
            (bson!({"$strLenCP": "$u"}), bson!(5)),
            (
                bson!({"$split": ["a,b,,c", ","]}),
                bson!(["a", "b", "", "c"]),
            ),
            (bson!({"$trim": {"input": "  x  "}}), bson!("x")),
            (
                bson!({"$ltrim": {"input": "xxay", "chars": "x"}}),
                bson!("ay"),
            ),
            (bson!({"$rtrim": {"input": "  x  "}}), bson!("  x")),
            (bson!({"$indexOfBytes": ["$s", "o"]}), bson!(4)),
            (bson!({"$indexOfBytes": ["$s", "o", 5]}), bson!(7)),
            (bson!({"$indexOfCP": ["$u", "l"]}), bson!(2)),
            (bson!({"$indexOfCP": ["$u", "z"]}), bson!(-1)),
            (
                bson!({"$regexMatch": {"input": "$s", "regex": "^hello", "options": "i"}}),
                bson!(true),
            ),
            (
                bson!({"$regexMatch": {"input": "$s", "regex": "^World"}}),
                bson!(false),
            ),
        ],
    );
}

#[test]
fn arrays() {
    check(
        doc! {"a": [1, 2, 3, 4], "e": []},
        vec![
            (bson!({"$size": "$a"}), bson!(4)),
            (bson!({"$arrayElemAt": ["$a", -1]}), bson!(4)),
            (bson!({"$arrayElemAt": ["$a", 9]}), Bson::Null),
            (bson!({"$first": "$a"}), bson!(1)),
            (bson!({"$last": "$a"}), bson!(4)),
            (bson!({"$in": [2, "$a"]}), bson!(true)),
            (
                bson!({"$concatArrays": ["$a", [5], "$e"]}),
                bson!([1, 2, 3, 4, 5]),
            ),
            (
                bson!({"$filter": {"input": "$a", "as": "x", "cond": {"$gt": ["$$x", 2]}}}),
                bson!([3, 4]),
            ),
            (
                bson!({"$filter": {"input": "$a", "cond": {"$gt": ["$$this", 1]}, "limit": 1}}),
                bson!([2]),
            ),
            (
                bson!({"$map": {"input": "$a", "as": "x", "in": {"$multiply": ["$$x", 10]}}}),
                bson!([10, 20, 30, 40]),
            ),
            (
                bson!({"$reduce": {"input": "$a", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}),
                bson!(10),
            ),
            (bson!({"$slice": ["$a", 2]}), bson!([1, 2])),
            (bson!({"$slice": ["$a", -2]}), bson!([3, 4])),
            (bson!({"$slice": ["$a", 1, 2]}), bson!([2, 3])),
            (bson!({"$isArray": ["$a"]}), bson!(true)),
            (bson!({"$isArray": ["$nope"]}), bson!(false)),
            (bson!({"$range": [0, 10, 3]}), bson!([0, 3, 6, 9])),
            (bson!({"$range": [3, 0, -1]}), bson!([3, 2, 1])),
            (bson!({"$reverseArray": "$a"}), bson!([4, 3, 2, 1])),
            (bson!({"$indexOfArray": ["$a", 3]}), bson!(2)),
            (bson!({"$indexOfArray": ["$a", 9]}), bson!(-1)),
        ],
    );
}

#[test]
fn conversions_and_types() {
    let oid = bson::oid::ObjectId::parse_str("5ab9cbfa31c2ab715d42129e").unwrap();
    check(
        doc! {"o": oid},
        vec![
            (bson!({"$toString": 1.0}), bson!("1")),
            (bson!({"$toString": 2.5}), bson!("2.5")),
            (bson!({"$toString": true}), bson!("true")),
            (
                bson!({"$toString": "$o"}),
                bson!("5ab9cbfa31c2ab715d42129e"),
            ),
            (
                bson!({"$toString": bson::DateTime::from_millis(0)}),
                bson!("1970-01-01T00:00:00.000Z"),
            ),
            (bson!({"$toInt": "42"}), bson!(42)),
            (bson!({"$toInt": 4.9}), bson!(4)),
            (bson!({"$toLong": true}), bson!(1i64)),
            (bson!({"$toDouble": "1.5"}), bson!(1.5)),
            (bson!({"$toBool": 0}), bson!(false)),
            (bson!({"$toBool": "false"}), bson!(true)),
            (
                bson!({"$toObjectId": "5ab9cbfa31c2ab715d42129e"}),
                Bson::ObjectId(oid),
            ),
            (
                bson!({"$toDate": 0i64}),
                Bson::DateTime(bson::DateTime::from_millis(0)),
            ),
            (bson!({"$toInt": null}), Bson::Null),
            (
                bson!({"$convert": {"input": "x", "to": "int", "onError": -1}}),
                bson!(-1),
            ),
            (
                bson!({"$convert": {"input": null, "to": "int", "onNull": 0}}),
                bson!(0),
            ),
            (bson!({"$convert": {"input": "7", "to": 16}}), bson!(7)),
            (bson!({"$isNumber": 1i64}), bson!(true)),
            (bson!({"$isNumber": "1"}), bson!(false)),
            (bson!({"$type": [[]]}), bson!("array")),
        ],
    );
}

#[test]
fn dates() {
    // 2021-03-14T15:09:26.535Z, a Sunday, day 73 of the year.
    let d = bson::DateTime::from_millis(1_615_734_566_535);
    check(
        doc! {"d": d},
        vec![
            (bson!({"$year": "$d"}), bson!(2021)),
            (bson!({"$month": "$d"}), bson!(3)),
            (bson!({"$dayOfMonth": "$d"}), bson!(14)),
            (bson!({"$hour": "$d"}), bson!(15)),
            (bson!({"$minute": "$d"}), bson!(9)),
            (bson!({"$second": "$d"}), bson!(26)),
            (bson!({"$millisecond": "$d"}), bson!(535)),
            (bson!({"$dayOfWeek": "$d"}), bson!(1)),
            (bson!({"$dayOfYear": "$d"}), bson!(73)),
            (
                bson!({"$hour": {"date": "$d", "timezone": "+02:00"}}),
                bson!(17),
            ),
            (
                bson!({"$dateToString": {"date": "$d"}}),
                bson!("2021-03-14T15:09:26.535Z"),
            ),
            (
                bson!({"$dateToString": {"date": "$d", "format": "%Y/%m/%d %j %w %%"}}),
                bson!("2021/03/14 073 1 %"),
            ),
            (
                bson!({"$dateToString": {"date": "$nope", "onNull": "none"}}),
                bson!("none"),
            ),
        ],
    );
}

#[test]
fn objects() {
    check(
        doc! {"a": {"x": 1}, "b": {"y": 2, "x": 3}},
        vec![
            (
                bson!({"$mergeObjects": ["$a", "$b"]}),
                bson!({"x": 3, "y": 2}),
            ),
            (bson!({"$mergeObjects": ["$a", null]}), bson!({"x": 1})),
            (bson!({"$getField": "a"}), bson!({"x": 1})),
            (
                bson!({"$getField": {"field": "y", "input": "$b"}}),
                bson!(2),
            ),
            (
                bson!({"$setField": {"field": "z", "input": "$a", "value": 5}}),
                bson!({"x": 1, "z": 5}),
            ),
            (
                bson!({"$setField": {"field": "x", "input": "$a", "value": "$$REMOVE"}}),
                bson!({}),
            ),
            (bson!({"$objectToArray": "$a"}), bson!([{"k": "x", "v": 1}])),
            (
                bson!({"$arrayToObject": [[["k1", 1], ["k2", 2]]]}),
                bson!({"k1": 1, "k2": 2}),
            ),
            (
                bson!({"$arrayToObject": [[{"k": "a", "v": 1}]]}),
                bson!({"a": 1}),
            ),
        ],
    );
}

#[test]
fn bad_expressions_get_mongods_codes() {
    let parse_errors: Vec<(Bson, i32, &str)> = vec![
        (bson!({"$foo": 1}), 168, "Unrecognized expression '$foo'"),
        (
            bson!({"$add": 1, "$subtract": 2}),
            15983,
            "must have exactly one field",
        ),
        (
            bson!({"$subtract": [1]}),
            16020,
            "Expression $subtract takes exactly 2 arguments. 1 were passed in.",
        ),
        (bson!({"$cond": [1, 2]}), 16020, "takes exactly 3 arguments"),
        (bson!("$"), 16872, "'$' by itself is not a valid FieldPath"),
        (
            bson!("$a..b"),
            15998,
            "FieldPath field names may not be empty strings.",
        ),
        (
            bson!("$a.$b"),
            16410,
            "FieldPath field names may not start with '$'",
        ),
        (
            bson!({"a": {"$bar": 1}}),
            168,
            "Unrecognized expression '$bar'",
        ),
        (
            bson!({"$switch": {"branches": []}}),
            40068,
            "$switch requires at least one branch",
        ),
        (
            bson!({"$map": {"input": []}}),
            9,
            "Missing 'in' parameter to $map",
        ),
        (
            bson!({"$filter": {"input": [], "cond": true, "foo": 1}}),
            9,
            "Unrecognized parameter to $filter: foo",
        ),
    ];
    for (e, code, msg) in parse_errors {
        let err = Expr::parse(&e).expect_err(&format!("{e} should not parse"));
        assert_eq!(err.code.number(), code, "{e}: {err}");
        assert!(
            err.message.contains(msg),
            "{e}: {} should contain {msg}",
            err.message
        );
    }
    let eval_errors: Vec<(Bson, i32, &str)> = vec![
        (
            bson!({"$add": [1, "x"]}),
            16554,
            "$add only supports numeric or date types, not string",
        ),
        (
            bson!({"$multiply": [1, "x"]}),
            16555,
            "$multiply only supports numeric types, not string",
        ),
        (
            bson!({"$subtract": ["x", 1]}),
            16556,
            "cant $subtract a int from a string",
        ),
        (bson!({"$divide": [1, 0]}), 16608, "can't $divide by zero"),
        (
            bson!({"$divide": ["x", 1]}),
            16609,
            "$divide only supports numeric types",
        ),
        (bson!({"$mod": [1, 0]}), 16610, "can't $mod by zero"),
        (
            bson!({"$abs": "x"}),
            28765,
            "$abs only supports numeric types, not string",
        ),
        (
            bson!({"$sqrt": -1}),
            28714,
            "$sqrt's argument must be greater than or equal to 0",
        ),
        (
            bson!({"$concat": ["a", 1]}),
            16702,
            "$concat only supports strings, not int",
        ),
        (
            bson!({"$size": 1}),
            17124,
            "The argument to $size must be an array. Type of argument: int",
        ),
        (
            bson!({"$arrayElemAt": [1, 0]}),
            28689,
            "$arrayElemAt's first argument must be an array",
        ),
        (
            bson!({"$arrayElemAt": [[1], "x"]}),
            28690,
            "$arrayElemAt's second argument must be a numeric value",
        ),
        (
            bson!({"$arrayElemAt": [[1], 0.5]}),
            28691,
            "representable as a 32-bit integer",
        ),
        (
            bson!({"$in": [1, 1]}),
            40081,
            "$in requires an array as a second argument, found: int",
        ),
        (
            bson!({"$concatArrays": [[1], 1]}),
            28664,
            "$concatArrays only supports arrays, not int",
        ),
        (bson!({"$toInt": "x"}), 241, "Failed to parse number 'x'"),
        (
            bson!({"$toInt": 3e10}),
            241,
            "Conversion would overflow target type",
        ),
        (
            bson!({"$toObjectId": 1}),
            241,
            "Unsupported conversion from int to objectId",
        ),
        (
            bson!({"$split": [1, ","]}),
            40085,
            "$split requires an expression that evaluates to a string as a first argument",
        ),
        (
            bson!({"$split": ["a", ""]}),
            40087,
            "$split requires a non-empty separator",
        ),
        (
            bson!({"$switch": {"branches": [{"case": false, "then": 1}]}}),
            40066,
            "could not find a matching branch",
        ),
        (
            bson!({"$regexMatch": {"input": "a", "regex": "("}}),
            51091,
            "Regular expression is invalid",
        ),
        (
            bson!({"$regexMatch": {"input": 1, "regex": "a"}}),
            51104,
            "$regexMatch needs 'input' to be of type string",
        ),
        (
            bson!({"$year": "x"}),
            16006,
            "can't convert from BSON type string to Date",
        ),
        (
            bson!({"$hour": {"date": bson::DateTime::from_millis(0), "timezone": "Mars/Base"}}),
            40485,
            "unrecognized time zone identifier",
        ),
    ];
    for (e, code, msg) in eval_errors {
        let parsed = Expr::parse(&e).unwrap_or_else(|err| panic!("{e} should parse: {err}"));
        let err = parsed
            .evaluate(&doc! {}, &doc! {})
            .expect_err(&format!("{e} should fail"));
        assert_eq!(err.code.number(), code, "{e}: {err}");
        assert!(
            err.message.contains(msg),
            "{e}: {} should contain {msg}",
            err.message
        );
    }
}
