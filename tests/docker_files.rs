//! The Dockerfile, docker-compose.yml and .dockerignore say what README.md and the issue
//! ask of them (checked without Docker; tests/docker_cluster.rs runs them for real).

use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Dockerfile's stages: (FROM line, the instructions after it), comments dropped and
/// continuation lines joined.
fn stages() -> Vec<(String, Vec<String>)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.starts_with("FROM ") {
            stages.push((line, Vec::new()));
        } else {
            stages.last_mut().expect("FROM first").1.push(line);
        }
    }
    stages
}

#[test]
fn dockerfile_prebuilt_first_source_build_pinned_runtime_from_scratch() {
    let stages = stages();
    let froms: Vec<&str> = stages.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        froms,
        [
            "FROM scratch AS prebuilt",
            "FROM rust:1.90-bookworm AS build",
            "FROM scratch AS runtime",
        ],
        "prebuilt must come first: the classic builder builds every stage before --target"
    );
    // The two images differ only in where the binary comes from.
    let without_binary = |stage: &(String, Vec<String>)| -> Vec<String> {
        stage
            .1
            .iter()
            .filter(|l| !l.starts_with("COPY ") && !l.starts_with("ARG "))
            .cloned()
            .collect()
    };
    assert_eq!(without_binary(&stages[0]), without_binary(&stages[2]));
    let runtime = &stages[2].1;
    assert!(runtime.contains(&"COPY --from=build /ferrod /ferrod".to_owned()));
    assert!(
        runtime.contains(
            &r#"HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=5 CMD ["/ferrod", "healthcheck", "--timeout-ms", "2000"]"#
                .to_owned()
        ),
        "exec-form healthcheck through the subcommand: {runtime:?}"
    );
    assert!(runtime.contains(&r#"ENTRYPOINT ["/ferrod"]"#.to_owned()));
    let build = stages[1].1.join("\n");
    assert!(build.contains("+crt-static") && build.contains("--profile image"));
}

#[test]
fn dockerignore_keeps_build_output_and_the_key_out() {
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in [
        "target/",
        "!target/static/x86_64-unknown-linux-gnu/image/ferrod",
        "tests/interop/.deps/",
        "docker/keyfile",
    ] {
        assert!(
            lines.contains(&needed),
            "{needed} missing from .dockerignore"
        );
    }
}

/// A YAML list of strings as `&str`s.
fn strs(v: &serde_norway::Value) -> Vec<&str> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn compose_three_self_initiating_members_with_key_volumes_and_healthchecks() {
    let mut compose: serde_norway::Value =
        serde_norway::from_str(&read("docker-compose.yml")).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: Vec<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, ["ferrod1", "ferrod2", "ferrod3"]);
    for (i, name) in names.iter().enumerate() {
        let service = &compose["services"][*name];
        let command = strs(&service["command"]);
        assert_eq!(
            command,
            [
                "--replSet",
                "rs0",
                "--bind_ip_all",
                "--port",
                "27017",
                "--dbpath",
                "/data/db",
                "--keyFile",
                "/etc/ferrod/keyfile",
                "--initialMembers",
                "ferrod1:27017,ferrod2:27017,ferrod3:27017",
            ],
            "{name}"
        );
        // The member finds itself in --initialMembers by its host name.
        assert_eq!(service["hostname"].as_str(), Some(*name));
        let volumes = strs(&service["volumes"]);
        assert_eq!(
            volumes,
            [
                format!("{name}-data:/data/db").as_str(),
                "${FERROD_KEYFILE:-./docker/keyfile}:/etc/ferrod/keyfile:ro",
            ]
        );
        assert!(compose["volumes"][format!("{name}-data").as_str()].is_null());
        let test = strs(&service["healthcheck"]["test"]);
        assert_eq!(
            test,
            ["CMD", "/ferrod", "healthcheck", "--timeout-ms", "2000"]
        );
        assert_eq!(
            service["ports"][0].as_str().unwrap(),
            format!(
                "${{FERROD{}_PUBLISH:-127.0.0.1:{}}}:27017",
                i + 1,
                27017 + i
            )
        );
        let env = &service["environment"];
        assert!(env["MONGO_INITDB_ROOT_USERNAME"].is_string());
        assert!(env["MONGO_INITDB_ROOT_PASSWORD"].is_string());
    }
}

#[test]
fn committed_key_is_a_valid_test_key() {
    let key: String = read("docker/keyfile")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!((6..=1024).contains(&key.len()), "length {}", key.len());
    assert!(key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)));
}
