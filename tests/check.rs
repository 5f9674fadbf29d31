//! `ginit check`: a valid config prints the plan and exits 0; an invalid one prints every
//! error with file:line:col, key path and hints, and exits 2.

mod common;

use common::*;
use std::process::Command;

fn check(dir: &TempDir, yaml: &str) -> (i32, String, String) {
    let path = dir.path("ginit.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(GINIT)
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_valid_config_prints_the_plan() {
    let dir = TempDir::new("check-ok");
    let (code, out, err) = check(
        &dir,
        "programs:\n  web:\n    command: sleep 100\n    depends_on: [migrate]\n    instances: 2\n  migrate:\n    command: [\"/bin/true\"]\n    oneshot: true\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    assert!(out.contains("start order: migrate, web"), "{out}");
    assert!(out.contains("instances: 2"), "{out}");
    assert!(out.contains("restart: on-failure"), "{out}");
}

#[test]
fn an_invalid_config_reports_every_error() {
    let dir = TempDir::new("check-bad");
    let (code, out, err) = check(
        &dir,
        "programs:\n  web:\n    command: /no/such/server\n    restat: always\n    depends_on: [db]\n  db:\n    command: sleep 1\n    user: no-such-user\n    stop: {signal: SIGFOO}\n",
    );
    assert_eq!(code, 2);
    assert_eq!(out, "");
    let file = dir.path("ginit.yaml");
    let file = file.display();
    for want in [
        format!("{file}:3:14: programs.web.command: cannot run `/no/such/server`"),
        format!("{file}:4:5: programs.web.restat: unknown key `restat` (did you mean `restart`?)"),
        format!("{file}:8:11: programs.db.user: no user named `no-such-user`"),
        format!("{file}:9:20: programs.db.stop.signal: `SIGFOO` is not a signal"),
        "ginit: 4 errors in".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn the_config_comes_from_ginit_config_and_a_missing_one_is_an_error() {
    let dir = TempDir::new("check-env");
    let path = dir.path("c.yaml");
    std::fs::write(&path, "programs:\n  a: {command: sleep 1}\n").unwrap();
    let out = Command::new(GINIT)
        .arg("check")
        .env("GINIT_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(GINIT)
        .args(["check", "-c", dir.path("absent.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config"));
}

#[test]
fn include_merges_drop_in_files_and_a_duplicate_names_both_files() {
    let dir = TempDir::new("check-include");
    let d = dir.path("ginit.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(
        d.join("10-db.yaml"),
        "programs:\n  db: {command: sleep 100}\nsockets:\n  pg: {listen: \"tcp://127.0.0.1:5432\"}\n",
    )
    .unwrap();
    // Hidden files and other extensions are not taken; a link to a file is (ConfigMaps).
    std::fs::write(d.join(".20-swap.yaml"), "this is not yaml: [").unwrap();
    std::fs::write(d.join("README"), "not a config").unwrap();
    std::fs::write(
        dir.path("30-cache.src"),
        "programs:\n  cache: {command: sleep 100}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path("30-cache.src"), d.join("30-cache.yaml")).unwrap();
    let (code, out, err) = check(
        &dir,
        "include: [ginit.d/*.yaml]\nprograms:\n  web: {command: sleep 100, depends_on: [db, cache]}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("start order: db, cache, web"), "{out}");

    // The same name in two files: refused, naming both; the error is in the included file.
    std::fs::write(
        d.join("40-web.yaml"),
        "programs:\n  web: {command: sleep 1}\n",
    )
    .unwrap();
    let (code, _, err) = check(
        &dir,
        "include: ginit.d/*.yaml\nprograms:\n  web: {command: sleep 100}\n",
    );
    assert_eq!(code, 2);
    let main = dir.path("ginit.yaml");
    let want = format!(
        "{}:2:3: programs.web: this program is defined twice (first at {}:3:3)",
        d.join("40-web.yaml").display(),
        main.display()
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");

    // A missing directory is an error, not an empty drop-in.
    let (code, _, err) = check(
        &dir,
        "include: [nowhere.d/*.yaml]\nprograms:\n  a: {command: sleep 1}\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("include[0]: cannot list"), "{err}");
}

/// check-jsonschema (PyPI; `tests/deps.sh` installs it): a real validator of JSON Schema
/// draft 2020-12 that reads YAML as YAML 1.2, as editors do. Exit status and output.
fn json_schema_check(schema: &std::path::Path, files: &[std::path::PathBuf]) -> (bool, String) {
    let out = Command::new("python3")
        .args(["-m", "check_jsonschema", "--schemafile"])
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        !said.contains("No module named check_jsonschema"),
        "check-jsonschema is not installed: run tests/deps.sh"
    );
    (out.status.success(), said)
}

/// The README's YAML blocks that are ginit configs (not Prometheus' or Kubernetes' files).
fn readme_configs(dir: &TempDir) -> Vec<std::path::PathBuf> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut files = Vec::new();
    for (i, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap();
        let ginit = block.lines().any(|l| {
            ["programs:", "sockets:", "metrics:", "include:"]
                .iter()
                .any(|k| l.starts_with(k))
        });
        if ginit {
            let path = dir.path(&format!("readme-{i}.yaml"));
            std::fs::write(&path, block).unwrap();
            files.push(path);
        }
    }
    files
}

#[test]
fn the_schema_accepts_every_example_and_refuses_what_ginit_refuses() {
    let dir = TempDir::new("check-schema");
    let out = Command::new(GINIT).arg("schema").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let schema_file = dir.path("ginit.schema.json");
    std::fs::write(&schema_file, &out.stdout).unwrap();
    // Every config in the repository, and every config of the README.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples: Vec<_> = ["demo/gin.yaml", "demo/pid1.yaml", "docker/ginit.yaml"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    let readme = readme_configs(&dir);
    assert!(readme.len() >= 4, "the README's configs: {readme:?}");
    examples.extend(readme);
    let (ok, said) = json_schema_check(&schema_file, &examples);
    assert!(ok, "{said}");
    // Mistakes ginit refuses, each refused by the schema too.
    let bad = [
        "programs:\n  web:\n    comand: /bin/true\n",
        "programs:\n  web:\n    command: /bin/true\n    instances: many\n",
        "programs:\n  web:\n    command: /bin/true\n    instances: 0\n",
        "programs:\n  web:\n    command: /bin/true\n    restart: sometimes\n",
        "programs:\n  web:\n    command: /bin/true\n    stdout: {file: /tmp/x.log, rotate: {keep: 0}}\n",
        "programs:\n  web:\n    command: /bin/true\n    ready: {timeout: soon}\n",
        "programs:\n  web:\n    command: /bin/true\n    limits: {nice: 40}\n",
        "programs:\n  web:\n    command: /bin/true\n    oneshot: \"yes\"\n",
        "programs:\n  web:\n    command: []\n",
        "programs:\n  web: {command: /bin/true}\nloglevel: debug\n",
        "programs:\n  web: {command: /bin/true}\nlog: {format: xml}\n",
    ];
    for (i, yaml) in bad.iter().enumerate() {
        let (code, _, err) = check(&dir, yaml);
        assert_eq!(code, 2, "ginit accepted {yaml:?}: {err}");
        let file = dir.path(&format!("bad-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let (ok, said) = json_schema_check(&schema_file, &[file]);
        assert!(!ok, "the schema accepted {yaml:?}: {said}");
    }
}
