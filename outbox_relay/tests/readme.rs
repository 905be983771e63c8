//! The README shows only code that compiles: each `// README: <name>`
//! region of `examples/readme.rs` (built by `cargo test`) must appear in the
//! README as the body of a ```rust block, character for character once the
//! region's indentation is removed.

const README: &str = include_str!("../../README.md");
const EXAMPLE: &str = include_str!("../examples/readme.rs");

/// The regions of the example: (name, lines without their indentation).
fn regions() -> Vec<(String, String)> {
    let mut regions = Vec::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in EXAMPLE.lines() {
        let marker = line.trim().strip_prefix("// README: ");
        match (marker, current.take()) {
            (Some("end"), Some((name, lines))) => {
                let indent = lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start().len())
                    .min()
                    .unwrap_or(0);
                let body: Vec<&str> = lines
                    .iter()
                    .map(|l| l.get(indent..).unwrap_or(""))
                    .collect();
                regions.push((name, body.join("\n")));
            }
            (Some(name), None) => current = Some((name.to_owned(), Vec::new())),
            (None, Some((name, mut lines))) => {
                lines.push(line);
                current = Some((name, lines));
            }
            (None, None) => {}
            (Some(other), Some((name, _))) => {
                panic!("README region {name} is not closed before {other}")
            }
        }
    }
    regions
}

#[test]
fn every_rust_block_of_the_readme_is_a_compiled_region() {
    let regions = regions();
    assert_eq!(regions.len(), 3, "produce, relay, tls: {regions:?}");
    let blocks: Vec<&str> = README
        .split("```rust\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or("").trim_end())
        .collect();
    for (name, body) in &regions {
        assert!(
            blocks.contains(&body.as_str()),
            "README has no ```rust block equal to region {name} of examples/readme.rs:\n{body}"
        );
    }
    for block in blocks {
        assert!(
            regions.iter().any(|(_, body)| body == block),
            "a ```rust block of the README is not in examples/readme.rs (so nothing compiles it):\n{block}"
        );
    }
}
