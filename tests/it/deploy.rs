//! The deploy path, offline: every `sam ... --config-env <env>` the README names resolves in
//! `samconfig.toml` with what `sam build` and `sam deploy` need, the overrides name real template
//! parameters with allowed values, and every function's build names a binary of the workspace.

use serde_json::Value;
use trimtab_tests::moto::workspace_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The environments the README's commands name.
fn readme_envs() -> Vec<String> {
    let readme = read("README.md");
    let mut envs: Vec<String> = readme
        .split("--config-env ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!name.is_empty() && name != "$env").then_some(name)
        })
        .collect();
    envs.sort();
    envs.dedup();
    envs
}

#[test]
fn every_config_env_the_readme_names_deploys_from_samconfig_alone() {
    let envs = readme_envs();
    assert_eq!(
        envs,
        ["dev", "prod", "staging"],
        "the README's environments"
    );
    let config: toml::Table = read("samconfig.toml")
        .parse()
        .expect("samconfig.toml is TOML");
    let template = trimtab_tests::template::load().expect("template");
    let parameters = template["Parameters"].as_object().expect("parameters");
    let mut stacks = Vec::new();
    for env in &envs {
        let section = |cmd: &str| {
            config
                .get(env)
                .and_then(|e| e.get(cmd))
                .and_then(|c| c.get("parameters"))
                .unwrap_or_else(|| panic!("samconfig.toml has no [{env}.{cmd}.parameters]"))
        };
        assert_eq!(
            section("build")
                .get("beta_features")
                .and_then(toml::Value::as_bool),
            Some(true),
            "{env}: cargo-lambda builds need beta_features"
        );
        let deploy = section("deploy");
        let text = |k: &str| {
            deploy
                .get(k)
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("{env}: deploy needs {k}"))
                .to_owned()
        };
        let stack = text("stack_name");
        assert!(stack.ends_with(env.as_str()), "{env}: stack {stack}");
        stacks.push(stack);
        assert!(
            text("capabilities").contains("CAPABILITY_IAM"),
            "{env}: the stack creates IAM roles"
        );
        assert_eq!(
            deploy.get("resolve_s3").and_then(toml::Value::as_bool),
            Some(true),
            "{env}: without resolve_s3 (or s3_bucket) sam deploy has nowhere to upload"
        );
        for pair in text("parameter_overrides").split_whitespace() {
            let (key, value) = pair.split_once('=').expect("Key=Value");
            let p = parameters
                .get(key)
                .unwrap_or_else(|| panic!("{env}: {key} is not a template parameter"));
            if let Some(allowed) = p["AllowedValues"].as_array() {
                assert!(
                    allowed.iter().any(|a| match a {
                        Value::String(v) => v == value,
                        Value::Number(n) => n.to_string() == value,
                        _ => false,
                    }),
                    "{env}: {key}={value} is not one of {allowed:?}"
                );
            }
        }
        let environment = text("parameter_overrides");
        assert!(
            environment.contains(&format!("Environment={env}")),
            "{env}: the stack must be deployed as its own environment"
        );
    }
    stacks.sort();
    stacks.dedup();
    assert_eq!(stacks.len(), envs.len(), "one stack per environment");
}

#[test]
fn every_function_builds_a_binary_of_the_workspace() {
    let template = trimtab_tests::template::load().expect("template");
    for f in trimtab_tests::template::functions(&template) {
        let meta = &template["Resources"][&f]["Metadata"];
        assert_eq!(meta["BuildMethod"], "rust-cargolambda", "{f}");
        let binary = meta["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{f}: no binary"));
        let manifest = read(&format!("crates/{binary}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{f}: crates/{binary} is not the package {binary}"
        );
        assert!(
            workspace_root()
                .join(format!("crates/{binary}/src/main.rs"))
                .exists(),
            "{f}: {binary} has no main.rs"
        );
        let props = &template["Resources"][&f]["Properties"];
        assert_eq!(props["Runtime"], "provided.al2023", "{f}");
        assert_eq!(props["Handler"], "bootstrap", "{f}");
        assert_eq!(props["Architectures"], Value::from(vec!["arm64"]), "{f}");
    }
}

#[test]
fn the_build_output_is_not_committed() {
    let ignored = read(".gitignore");
    assert!(
        ignored
            .lines()
            .any(|l| l.trim() == "/.aws-sam" || l.trim() == ".aws-sam/")
    );
}

/// `sam validate --lint`, as `scripts/build-lambda.sh` runs it before a build (the SAM CLI is
/// installed into .venv/deploy on first use; no AWS call).
#[test]
fn sam_validates_the_template() {
    let out = std::process::Command::new(workspace_root().join("scripts/build-lambda.sh"))
        .arg("validate")
        .current_dir(workspace_root())
        .output()
        .expect("running scripts/build-lambda.sh validate");
    assert!(
        out.status.success(),
        "sam validate --lint failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
