use std::time::{Duration, Instant};

use super::*;
use crate::response::ObjectVersion;

const CAP: usize = 4 * 1024 * 1024;

fn spec(yaml: &str) -> FilesSpec {
    match FilesSpec::parse(Some(yaml)) {
        Ok(spec) => spec,
        Err(problems) => panic!("{yaml}: {problems:?}"),
    }
}

fn problems(yaml: &str) -> Vec<String> {
    FilesSpec::parse(Some(yaml)).err().unwrap_or_default().iter().map(ToString::to_string).collect()
}

fn file(path: &str, contents: &str) -> MountedFile {
    MountedFile::new(path, FileMode::DEFAULT, contents.as_bytes().to_vec())
}

fn response(files: Vec<MountedFile>) -> MountResponse {
    let versions = files.iter().map(|f| ObjectVersion::new(f.path.clone(), "1")).collect();
    MountResponse { files, versions, ..MountResponse::default() }
}

fn run(files: &FilesSpec, mount: &mut MountResponse) -> Result<ShapedKinds> {
    shape(mount, files, FileMode::new(0o640).unwrap_or_default(), CAP)
}

fn contents(mount: &MountResponse, path: &str) -> String {
    let file = mount.files.iter().find(|f| f.path == path);
    file.map(|f| String::from_utf8_lossy(f.contents.expose()).into_owned())
        .unwrap_or_else(|| format!("<no {path}>"))
}

fn paths(mount: &MountResponse) -> Vec<&str> {
    mount.files.iter().map(|f| f.path.as_str()).collect()
}

const DB: &str = r#"{"username": "app", "password": "s3cr3t-pw!", "port": 5432, "tls": {"mode": "verify"}}"#;

#[test]
fn a_template_builds_a_dsn_from_a_json_secret_that_is_not_written() -> Result<()> {
    let files = spec(
        r#"
- path: dsn
  filePermission: "0400"
  template: 'postgres://{{ (objects["db-creds"] | fromjson).username }}:{{ (objects["db-creds"] | fromjson).password }}@db:5432/app'
"#,
    );
    let shape = FileShape { write_file: false, ..FileShape::PLAIN };
    let mut mount = response(vec![file("db-creds", DB).shaped("db/creds", shape), file("other", "x")]);
    let kinds = run(&files, &mut mount)?;
    assert_eq!(kinds, ["template"]);
    assert_eq!(paths(&mount), ["other", "dsn"], "db-creds is read, not written");
    assert_eq!(contents(&mount, "dsn"), "postgres://app:s3cr3t-pw!@db:5432/app");
    assert_eq!(mount.files[1].mode.bits(), 0o400);
    assert_eq!(mount.versions.len(), 2, "versions are the objects read");
    Ok(())
}

#[test]
fn template_filters_and_the_trailing_newline() -> Result<()> {
    let files = spec(
        r#"
- path: all
  template: |
    {{ objects.api | b64encode }} {{ "aGk=" | b64decode }} {{ (objects.cfg | fromyaml).a.b }}
    {{ objects["db-creds"] | fromjson | tojson }}
    {% for name in objects.keys() %}{{ name }};{% endfor %}
    {{ objects.get("missing", "fallback") }} {{ objects.missing | default("d") }} {% if objects.missing is defined %}no{% else %}ok{% endif %}
"#,
    );
    let mut mount =
        response(vec![file("api", "key"), file("cfg", "a:\n  b: nested\n"), file("db-creds", DB)]);
    run(&files, &mut mount)?;
    assert_eq!(
        contents(&mount, "all"),
        format!(
            "a2V5 hi nested\n{}\napi;cfg;db-creds;\nfallback d ok\n",
            r#"{"username":"app","password":"s3cr3t-pw!","port":5432,"tls":{"mode":"verify"}}"#
        ),
        "keys keep their order; a `|` block keeps its newline"
    );
    Ok(())
}

#[test]
fn formats_hold_every_top_level_key_in_order() -> Result<()> {
    let yaml = |format: &str| format!("- path: out\n  format: {format}\n  from: [db-creds, api]\n");
    let api = r#"{"API_KEY": "k 1", "z_flag": true}"#;
    let render = |format: &str| -> Result<String> {
        let mut mount = response(vec![file("db-creds", DB), file("api", api)]);
        run(&spec(&yaml(format)), &mut mount)?;
        Ok(contents(&mount, "out"))
    };
    assert_eq!(
        render("dotenv")?,
        "username='app'\npassword='s3cr3t-pw!'\nport='5432'\ntls='{\"mode\":\"verify\"}'\nAPI_KEY='k 1'\nz_flag='true'\n"
    );
    assert_eq!(
        render("properties")?,
        "username=app\npassword=s3cr3t-pw\\!\nport=5432\ntls={\"mode\"\\:\"verify\"}\nAPI_KEY=k 1\nz_flag=true\n"
    );
    assert_eq!(
        render("json")?,
        "{\n  \"username\": \"app\",\n  \"password\": \"s3cr3t-pw!\",\n  \"port\": 5432,\n  \"tls\": {\n    \"mode\": \"verify\"\n  },\n  \"API_KEY\": \"k 1\",\n  \"z_flag\": true\n}\n"
    );
    assert_eq!(
        render("yaml")?,
        "username: app\npassword: s3cr3t-pw!\nport: 5432\ntls:\n  mode: verify\nAPI_KEY: k 1\nz_flag: true\n"
    );
    Ok(())
}

#[test]
fn a_key_in_two_sources_names_both_objects() {
    let files = spec("- path: app.env\n  format: dotenv\n  from: [a, b]\n");
    let mut mount = response(vec![file("a", r#"{"X": "1"}"#), file("b", r#"{"X": "2"}"#)]);
    let error = run(&files, &mut mount).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains(r#"key "X" is in both object "a" and object "b""#), "{error}");
    assert!(error.contains(r#"field "files[0].from""#), "{error}");
}

#[test]
fn dotenv_refuses_what_readers_would_read_differently_naming_the_key() {
    for (value, why) in [
        (r#"{"K": "a'b$c"}"#, "single quote or backslash together with $"),
        (r#"{"K": "x${HOME}"}"#, "${...}"),
        (r#"{"K": "a\rb"}"#, "carriage return"),
        (r#"{"K": "a\u0000b"}"#, "NUL"),
        (r#"{"1K": "v"}"#, "not an environment variable name"),
        (r#"{"a-b": "v"}"#, "not an environment variable name"),
    ] {
        let files = spec("- path: app.env\n  format: dotenv\n  from: [s]\n");
        let mut mount = response(vec![file("s", value)]);
        let error = run(&files, &mut mount).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(why) && error.contains("key"), "{value}: {error}");
        assert!(!error.contains("a'b$c") && !error.contains("x${HOME}"), "no value in {error}");
    }
}

#[test]
fn dotenv_quotes_as_all_three_readers_agree() {
    let line = |value: &str| formats::dotenv_line("K", value).map(|l| l.to_string());
    assert_eq!(line("plain"), Ok("K='plain'\n".to_owned()));
    assert_eq!(line("$HOME `x` # y"), Ok("K='$HOME `x` # y'\n".to_owned()));
    assert_eq!(line("it's \"q\" \\n"), Ok("K=\"it's \\\"q\\\" \\\\n\"\n".to_owned()));
    assert_eq!(line("two\nlines"), Ok("K='two\nlines'\n".to_owned()));
}

#[test]
fn properties_escape_as_java_store_does() {
    let mut out = String::new();
    formats::escape_properties(&mut out, " a b=c:d#e!f\\g\th\ni\u{e9}\u{1F600}", false);
    assert_eq!(out, "\\ a b\\=c\\:d\\#e\\!f\\\\g\\th\\ni\\u00E9\\uD83D\\uDE00");
    let mut key = String::new();
    formats::escape_properties(&mut key, "a key", true);
    assert_eq!(key, "a\\ key");
}

#[test]
fn expand_keys_writes_one_file_per_key_and_decode_decodes() -> Result<()> {
    let expand = FileShape { expand_keys: true, ..FileShape::PLAIN };
    let hidden_expand = FileShape { write_file: false, expand_keys: true, decode: None };
    let mut mount = response(vec![
        file("db-creds", DB).shaped("db", expand),
        file("other", r#"{"a": "1"}"#).shaped("other", hidden_expand),
        file("keystore", "AAEC/w").shaped("ks", FileShape::decoded(Some(Decoding::Base64))),
        file("hexed", "00ff").shaped("hx", FileShape::decoded(Some(Decoding::Hex))),
    ]);
    let kinds = run(&FilesSpec::default(), &mut mount)?;
    assert_eq!(paths(&mount), ["db-creds", "keystore", "hexed", "username", "password", "port", "tls", "a"]);
    assert_eq!(contents(&mount, "password"), "s3cr3t-pw!");
    assert_eq!(contents(&mount, "port"), "5432");
    assert_eq!(contents(&mount, "tls"), r#"{"mode":"verify"}"#);
    let bytes =
        |path: &str| mount.files.iter().find(|f| f.path == path).map(|f| f.contents.expose().to_vec());
    assert_eq!(bytes("keystore"), Some(vec![0, 1, 2, 255]));
    assert_eq!(bytes("hexed"), Some(vec![0, 255]));
    assert_eq!(kinds.iter().filter(|k| **k == "expanded_key").count(), 5);
    assert_eq!(kinds.iter().filter(|k| **k == "decoded").count(), 2);
    Ok(())
}

#[test]
fn shaping_errors_name_the_object_or_entry_and_never_a_value() {
    let cases: Vec<(MountResponse, FilesSpec, &str)> = vec![
        (
            response(vec![
                file("ks", "not base64!").shaped("keystore", FileShape::decoded(Some(Decoding::Base64))),
            ]),
            FilesSpec::default(),
            r#"object "keystore", field "decode": the value is not base64"#,
        ),
        (
            response(vec![
                file("x", "s3cr3t plain").shaped("obj", FileShape { expand_keys: true, ..FileShape::PLAIN }),
            ]),
            FilesSpec::default(),
            r#"object "obj", field "expandKeys": the value is not JSON"#,
        ),
        (
            response(vec![
                file("x", r#"{"../up": "s3cr3t"}"#)
                    .shaped("obj", FileShape { expand_keys: true, ..FileShape::PLAIN }),
            ]),
            FilesSpec::default(),
            r#"key "../up" cannot be a file name"#,
        ),
        (
            response(vec![
                file("x", r#"{"other": "s3cr3t"}"#)
                    .shaped("obj", FileShape { expand_keys: true, ..FileShape::PLAIN }),
                file("other", "v"),
            ]),
            FilesSpec::default(),
            r#"file "other" of key "other" of object "obj" (expandKeys) collides with file "other""#,
        ),
        (
            response(vec![file("s", "s3cr3t plain")]),
            spec("- path: out\n  template: '{{ objects.s | fromjson }}'"),
            r#"field "files[0].template": the template of "out" failed, line 1: invalid operation: fromjson: the value is not JSON"#,
        ),
        (
            response(vec![file("s", r#"{"pin": 987654321}"#)]),
            spec(
                "- path: out\n  template: '{{ (objects.s | fromjson).pin * 170141183460469231731687303715884105727 }}'",
            ),
            "details withheld",
        ),
        (
            response(vec![file("s", "s3cr3t")]),
            spec("- path: out\n  template: '{{ objects.gone }}'"),
            r#"undefined value (an object this mount does not have, or a key its value does not have; test optional objects with `is defined` or `default`) (this mount has no object file named "gone")"#,
        ),
        (
            response(vec![file("s", "s3cr3t")]),
            spec("- path: s/x\n  template: 'x'"),
            r#"file "s/x" of files[0] collides with file "s""#,
        ),
        (
            response(vec![file("s", "[1, 2]")]),
            spec("- path: e\n  format: json\n  from: [s]"),
            r#"object "s" is not a JSON object"#,
        ),
    ];
    for (mut mount, files, expected) in cases {
        let error = run(&files, &mut mount).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(expected), "want {expected}\n got {error}");
        assert!(!error.contains("s3cr3t") && !error.contains("987654321"), "a value in {error}");
    }
}

#[test]
fn templates_are_bounded_in_time_memory_and_output() {
    for (template, expected) in [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "runs too long"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
        ("{{ 'x' | indent(1000000000000) }}", "unknown filter"),
        ("{{ 'x' * 100000000000 }}", "larger than 1048576 bytes"),
        ("{% set y = 'y' * 10000 %}{% for i in range(200) %}{{ y }}{% endfor %}", "larger than"),
    ] {
        let files = spec(&format!("- path: out\n  template: \"{template}\"\n"));
        let mut mount = response(vec![file("s", "v")]);
        let started = Instant::now();
        let error = shape(&mut mount, &files, FileMode::DEFAULT, 1024 * 1024).err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains(expected)), "{template}: {error:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{template} took {:?}", started.elapsed());
    }
}

#[test]
fn files_entries_are_checked_when_parsed() {
    let cases = [
        ("- path: a\n  template: x\n  format: json\n", "has both template and format"),
        ("- path: a\n", "has neither template nor format"),
        ("- template: x\n", "path must be specified"),
        ("- path: ../a\n  template: x\n", "path can not contain ../"),
        (
            "- path: a\n  template: x\n- path: a\n  template: y\n",
            "named twice in files (files[0] and files[1])",
        ),
        ("- path: a\n  format: toml\n  from: [x]\n", "format must be dotenv, properties, json or yaml"),
        ("- path: a\n  format: json\n", "from must list the objects"),
        ("- path: a\n  format: json\n  from: [x, x]\n", r#"object "x" is listed twice"#),
        ("- path: a\n  template: x\n  from: [x]\n", "from goes with format"),
        ("- path: a\n  tempalte: x\n", "unknown key `tempalte` (did you mean `template`?)"),
        ("- path: a\n  template: 'ok\n\n    {{ objects[ }}'\n", "does not parse at line 2"),
        ("- path: a\n  template: x\n  filePermission: '999'\n", "files[0].filePermission"),
        ("path: a", "files must be a YAML list"),
    ];
    for (yaml, expected) in cases {
        let found = problems(yaml).join("; ");
        assert!(found.contains(expected), "{yaml}\nwant {expected}\n got {found}");
    }
}

#[test]
fn validate_finds_unknown_names_variables_and_paths_without_values() {
    let files = spec(
        r#"
- path: dsn
  template: '{{ (objects["db-creds"] | fromjson).user }} {{ objects.api }} {{ objects.get("opt") }} {{ object["x"] }} {% set v = 1 %}{{ v }} {{ range(2) | list }}'
- path: more
  template: '{{ objects.api | nosuchfilter }}{% if objects.api is nosuchtest %}{% endif %}{{ objects.api | upper | b64encode }}{% if objects.api is not defined %}{% endif %}'
- path: app.env
  format: dotenv
  from: [db-cred]
- path: api
  format: json
  from: [api]
"#,
    );
    let found: Vec<String> =
        files.check_names(&["db-creds", "api", "opt"], &|_| false).iter().map(ToString::to_string).collect();
    let all = found.join("\n");
    assert_eq!(found.len(), 5, "{all}");
    assert!(all.contains(r#"uses the filter "nosuchfilter", which does not exist"#), "{all}");
    assert!(all.contains(r#"uses the test "nosuchtest", which does not exist"#), "{all}");
    assert!(
        all.contains(r#"field "files[0].template": the template of "dsn" uses the variable "object""#),
        "{all}"
    );
    assert!(
        all.contains(r#"field "files[2].from": it reads object "db-cred", which is not a file"#),
        "{all}"
    );
    assert!(all.contains(r#"(did you mean "db-creds"?)"#), "{all}");
    assert!(all.contains(r#"field "files[3].path": file "api" is also an object's file"#), "{all}");
    assert_eq!(files.entries()[0].reads(), ["db-creds", "api", "opt"]);
}

#[test]
fn nothing_to_shape_is_free_and_untouched() -> Result<()> {
    let mut mount = response(vec![file("a", "1"), file("b", "2")]);
    assert_eq!(run(&FilesSpec::default(), &mut mount)?, ShapedKinds::new());
    assert_eq!(paths(&mount), ["a", "b"]);
    Ok(())
}

#[test]
fn debug_output_holds_no_value() {
    let objects = ObjectValues::take(&mut [file("db", "s3cr3t")]);
    assert!(!format!("{objects:?}").contains("s3cr3t"));
    let shaped = file("db", "s3cr3t").shaped("o", FileShape { write_file: false, ..FileShape::PLAIN });
    assert!(!format!("{shaped:?}").contains("s3cr3t"));
}

#[test]
fn every_object_keeps_its_contents_after_templates_read_some_of_them() -> Result<()> {
    let files = spec("- path: out\n  template: '{{ objects.a }}+{{ objects.get(\"c\") }}'\n");
    let mut mount = response(vec![file("a", "1"), file("b", "unread"), file("c", "3"), file("b", "later b")]);
    run(&files, &mut mount)?;
    assert_eq!(contents(&mount, "out"), "1+3");
    let all: Vec<(&str, String)> = mount
        .files
        .iter()
        .map(|f| (f.path.as_str(), String::from_utf8_lossy(f.contents.expose()).into_owned()))
        .collect();
    assert_eq!(
        all,
        [("a", "1"), ("b", "unread"), ("c", "3"), ("b", "later b"), ("out", "1+3")]
            .map(|(p, c)| (p, c.to_owned())),
        "objects moved into the template context come back, also one a later file of its path hides"
    );
    Ok(())
}

#[test]
fn long_values_render_whole_whatever_the_output_buffer_started_at() -> Result<()> {
    let long = "x".repeat(70_000);
    let files = spec(
        "- path: named\n  template: '{{ objects.v }}{{ objects.v }}'\n- path: looped\n  template: '{% for k, v in objects.items() %}{{ v }}{% endfor %}'\n",
    );
    let mut mount = response(vec![file("v", &long)]);
    run(&files, &mut mount)?;
    assert_eq!(contents(&mount, "named"), long.repeat(2));
    assert_eq!(contents(&mount, "looped"), long);
    Ok(())
}

/// Ten thousand entries (the most files a mount may write) are checked in linear time; more are
/// refused before any is parsed.
#[test]
fn files_entries_are_bounded_and_their_paths_checked_in_linear_time() {
    let entries =
        |n: usize| (0..n).map(|i| format!("- {{path: f{i}, format: json, from: [a]}}\n")).collect::<String>();
    let started = Instant::now();
    assert_eq!(spec(&entries(MAX_FILES_PER_MOUNT)).entries().len(), MAX_FILES_PER_MOUNT);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let refused = problems(&entries(MAX_FILES_PER_MOUNT + 1));
    assert!(refused.iter().any(|p| p.contains("more than 10000 files in one mount")), "{refused:?}");
}

/// A template that names work fuel does not bound (or a value nested a level a step) is never
/// started on the thread that serves the mount.
#[test]
fn templates_naming_unbounded_work_are_marked_slow_from_the_start() {
    let light = spec("- {path: a, template: '{{ (objects.x | fromjson).k }}'}\n");
    assert!(!light.is_slow());
    for template in [
        "{{ objects.x | pfx(\"p\") }}",
        "{% filter fromyaml %}{{ objects.x }}{% endfilter %}",
        "{{ [1] | batch(1) }}",
    ] {
        let heavy = spec(&format!("- path: a\n  template: '{template}'\n"));
        assert!(heavy.is_slow(), "{template}");
    }
}

/// Six thousand chained filters overflowed a 2 MiB stack while compiling (the worker's, before
/// any render): refused from the tokens, on a thread of that stack.
#[test]
fn a_long_chain_is_refused_on_a_small_stack() -> std::result::Result<(), String> {
    let template = format!("{{{{ 1{} }}}}", " | string".repeat(6000));
    let files = format!("- path: out\n  template: '{template}'\n");
    let refused = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || problems(&files))
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "parsing panicked".to_owned())?;
    assert!(refused.iter().any(|p| p.contains("more than 1000 (split it)")), "{refused:?}");
    Ok(())
}
