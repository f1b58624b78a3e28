//! docs/compatibility.md stays true: every name it lists is in the code's tables with the
//! status it gives, every name in the tables is on the page, and the parsers recognise
//! the supported stage, accumulator, expression and update operator names and refuse the
//! refused ones with the code the page gives.

use bson::{doc, Bson, Document};
use ferrod::query::{expr, matcher, pipeline, projection, update};
use std::collections::{BTreeMap, BTreeSet};

/// Section title → (name → status) from the page's tables.
fn page() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/compatibility.md"
    ))
    .expect("docs/compatibility.md");
    let mut sections = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            current = title.to_owned();
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 3 && cells[1].starts_with('`') && cells[1].ends_with('`') {
            let name = cells[1].trim_matches('`').to_owned();
            let previous = sections
                .entry(current.clone())
                .or_insert_with(BTreeMap::new)
                .insert(name.clone(), cells[2].to_owned());
            assert!(previous.is_none(), "{name} is listed twice in {current}");
        }
    }
    sections
}

fn section<'a>(
    page: &'a BTreeMap<String, BTreeMap<String, String>>,
    prefix: &str,
) -> &'a BTreeMap<String, String> {
    page.iter()
        .find(|(title, _)| title.starts_with(prefix))
        .map(|(_, rows)| rows)
        .unwrap_or_else(|| panic!("no section '{prefix}' on the page"))
}

/// The names whose status starts with `status`.
fn with_status(rows: &BTreeMap<String, String>, status: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|(_, s)| s.starts_with(status))
        .map(|(n, _)| n.clone())
        .collect()
}

fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_owned).collect()
}

#[test]
fn every_command_in_the_table_is_on_the_page_and_only_those() {
    let page = page();
    let rows = section(&page, "Commands");
    let table = set(ferrod::commands::TABLE.iter().map(|c| c.name));
    assert_eq!(with_status(rows, "supported"), table);
    assert_eq!(rows.len(), table.len(), "commands with another status");
}

fn options() -> pipeline::Options {
    pipeline::Options {
        db: "t".into(),
        coll: Some("c".into()),
        vars: Document::new(),
        allow_disk_use: true,
        memory_limit: 1 << 20,
        group_memory_limit: 1 << 20,
    }
}

fn parse_pipeline(stages: Vec<Document>) -> Result<(), i32> {
    let stages: Vec<Bson> = stages.into_iter().map(Bson::Document).collect();
    pipeline::Pipeline::parse(&stages, &options())
        .map(|_| ())
        .map_err(|e| e.code.number())
}

#[test]
fn stages_on_the_page_match_the_pipeline() {
    let page = page();
    let rows = section(&page, "Aggregation stages");
    assert_eq!(
        with_status(rows, "supported"),
        set(pipeline::STAGES.iter().copied())
    );
    assert_eq!(
        with_status(rows, "refused: 238"),
        set(pipeline::NOT_SUPPORTED.iter().copied())
    );
    assert_eq!(with_status(rows, "refused: 115"), set(["$changeStream"]));
    assert_eq!(
        rows.len(),
        pipeline::STAGES.len() + pipeline::NOT_SUPPORTED.len() + 1
    );
    for (name, status) in rows {
        let got = parse_pipeline(vec![doc! {name.as_str(): {}}]);
        if status.starts_with("supported") {
            // Recognised: any error is about the stage's argument, not its name.
            assert!(
                !matches!(got, Err(40324) | Err(238) | Err(115)),
                "{name}: {got:?}"
            );
        } else {
            let code: i32 = status["refused: ".len()..][..3].parse().unwrap();
            assert_eq!(got, Err(code), "{name}");
        }
    }
}

#[test]
fn accumulators_on_the_page_match_group() {
    let page = page();
    let rows = section(&page, "Accumulators");
    assert_eq!(
        with_status(rows, "supported"),
        set(pipeline::accumulator_names())
    );
    assert_eq!(
        with_status(rows, "refused: 238"),
        set(pipeline::NOT_SUPPORTED_ACCUMULATORS.iter().copied())
    );
    for (name, status) in rows {
        let arg = if name == "$count" {
            Bson::Document(Document::new())
        } else {
            Bson::String("$a".into())
        };
        let got = parse_pipeline(vec![
            doc! {"$group": {"_id": null, "x": {name.as_str(): arg}}},
        ]);
        if status.starts_with("supported") {
            assert_eq!(got, Ok(()), "{name}");
        } else {
            assert_eq!(got, Err(238), "{name}");
        }
    }
}

#[test]
fn expression_operators_on_the_page_match_the_evaluator() {
    let page = page();
    let rows = section(&page, "Expression operators");
    assert_eq!(
        with_status(rows, "supported"),
        set(expr::OPERATORS.iter().copied())
    );
    assert_eq!(rows.len(), set(expr::OPERATORS.iter().copied()).len());
    for name in rows.keys() {
        // Recognised: an arity or argument error at most, never 168.
        if let Err(e) = expr::Expr::parse(&Bson::Document(doc! {name.as_str(): []})) {
            assert_ne!(e.code.number(), 168, "{name}: {e:?}");
        }
    }
    let unknown = expr::Expr::parse(&Bson::Document(doc! {"$noSuchOperator": []}));
    assert_eq!(unknown.unwrap_err().code.number(), 168);
}

#[test]
fn query_operators_on_the_page_match_the_matcher() {
    let page = page();
    let rows = section(&page, "Query operators");
    assert_eq!(
        with_status(rows, "supported"),
        set(matcher::OPERATORS.iter().copied())
    );
    let refused: BTreeSet<String> = set(matcher::GEO_OPERATORS.iter().copied())
        .union(&set(matcher::REFUSED_OPERATORS.iter().copied()))
        .cloned()
        .collect();
    assert_eq!(with_status(rows, "refused: 2 "), refused);
    assert_eq!(rows.len(), matcher::OPERATORS.len() + refused.len());
    for name in &refused {
        let filter = if matcher::GEO_OPERATORS.contains(&name.as_str()) {
            doc! {"a": {name.as_str(): [0, 0]}}
        } else {
            doc! {name.as_str(): "x"}
        };
        let e = matcher::Filter::parse(&filter).unwrap_err();
        assert_eq!(e.code.number(), 2, "{name}");
        assert!(e.message.contains(name.as_str()), "{name}: {}", e.message);
    }
}

#[test]
fn update_operators_on_the_page_match_the_update_language() {
    let page = page();
    let rows = section(&page, "Update operators");
    assert_eq!(
        with_status(rows, "supported"),
        set(update::MODIFIERS.iter().copied())
    );
    assert_eq!(rows.len(), update::MODIFIERS.len());
    for name in rows.keys() {
        let arg = if name == "$rename" {
            doc! {"a": "b"}
        } else if name == "$bit" {
            doc! {"a": {"and": 1}}
        } else if name == "$pullAll" {
            doc! {"a": [1]}
        } else if name == "$currentDate" {
            doc! {"a": true}
        } else {
            doc! {"a": 1}
        };
        let parsed = update::Update::parse(&Bson::Document(doc! {name.as_str(): arg}), None);
        assert!(parsed.is_ok(), "{name}: {parsed:?}");
    }
}

#[test]
fn projection_operators_on_the_page_match_find_projections() {
    let page = page();
    let rows = section(&page, "Projection operators");
    assert_eq!(
        with_status(rows, "supported"),
        set(projection::OPERATORS.iter().copied())
    );
    assert_eq!(
        with_status(rows, "refused: 2 "),
        set(projection::REFUSED.iter().copied())
    );
    let meta = projection::Projection::parse(&doc! {"s": {"$meta": "textScore"}});
    assert_eq!(meta.unwrap_err().code.number(), 2);
    assert!(projection::Projection::parse_with_query(&doc! {"a.$": 1}, &doc! {"a": 1}).is_ok());
    assert!(projection::Projection::parse(&doc! {"a": {"$slice": 1}}).is_ok());
    assert!(projection::Projection::parse(&doc! {"a": {"$elemMatch": {"b": 1}}}).is_ok());
}
