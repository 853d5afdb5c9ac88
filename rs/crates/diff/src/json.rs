//! Structural JSON comparison with readable paths.
//!
//! Paths: object keys joined with `.` (`disk.sha256`), array elements by index (`tools[0]`) or,
//! when every element of both arrays is an object with a unique string `name` (or `SPDXID`, or
//! `path`, tried in that order), by that key (`inputs[name=base].digest`,
//! `files[SPDXID=SPDXRef-File-etc-motd-…]`), so one inserted element is one difference. Keys that are empty or contain `.`, `[`, `]` or `"` are written
//! as `["key"]`. Differences come out sorted: object keys bytewise, named elements by name,
//! indexed elements by index.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// One differing JSON value; `None` when the path is absent on that side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDiff {
    pub path: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
}

/// Every path at which `a` and `b` differ (leaves, or whole subtrees present on one side only).
pub fn diff_json(a: &Value, b: &Value) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk("", Some(a), Some(b), &mut out);
    out
}

fn key_segment(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty() && !key.contains(['.', '[', ']', '"']);
    match (prefix.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{prefix}.{key}"),
        (_, false) => format!("{prefix}[{}]", Value::String(key.to_string())),
    }
}

/// Keys that identify the elements of an array, tried in order.
const ID_KEYS: [&str; 3] = ["name", "SPDXID", "path"];

/// The elements of `arr` by the value of `key`, if every one is an object with a unique string
/// value there.
fn named<'v>(arr: &'v [Value], key: &str) -> Option<BTreeMap<&'v str, &'v Value>> {
    let mut m = BTreeMap::new();
    for v in arr {
        let name = v.as_object()?.get(key)?.as_str()?;
        if m.insert(name, v).is_some() {
            return None;
        }
    }
    Some(m)
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldDiff>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                walk(&key_segment(path, k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            let by_key = ID_KEYS
                .iter()
                .find_map(|k| Some((*k, named(x, k)?, named(y, k)?)));
            if let Some((key, nx, ny)) = by_key {
                let names: BTreeSet<&str> = nx.keys().chain(ny.keys()).copied().collect();
                for n in names {
                    let seg = if n.contains([']', '"']) || n.is_empty() {
                        format!("{path}[{key}={}]", Value::String(n.to_string()))
                    } else {
                        format!("{path}[{key}={n}]")
                    };
                    walk(&seg, nx.get(n).copied(), ny.get(n).copied(), out);
                }
            } else {
                for i in 0..x.len().max(y.len()) {
                    walk(&format!("{path}[{i}]"), x.get(i), y.get(i), out);
                }
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldDiff {
            path: if path.is_empty() {
                "$".to_string()
            } else {
                path.to_string()
            },
            a: a.cloned(),
            b: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_paths_by_key_index_and_name() {
        let a = json!({"seed": "x", "epoch": 1, "inputs": [{"name": "base", "digest": "d1"}, {"name": "/etc/motd", "digest": "m"}],
                       "list": [1, 2, 3], "disk": {"partitions": [{"name": "root", "size": 5}]}, "a.b": 1, "same": {"k": [1]}});
        let b = json!({"seed": "y", "epoch": 1, "inputs": [{"name": "/etc/motd", "digest": "m"}, {"name": "base", "digest": "d2"}, {"name": "new"}],
                       "list": [1, 3], "disk": {"partitions": [{"name": "root", "size": 6}]}, "a.b": 2, "same": {"k": [1]}, "extra": true});
        let d = diff_json(&a, &b);
        let paths: Vec<&str> = d.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "[\"a.b\"]",
                "disk.partitions[name=root].size",
                "extra",
                "inputs[name=base].digest",
                "inputs[name=new]",
                "list[1]",
                "list[2]",
                "seed"
            ]
        );
        assert_eq!(d[2].a, None);
        assert_eq!(d[2].b, Some(json!(true)));
        assert_eq!(d[6].b, None);
        assert_eq!(d[7].a, Some(json!("x")));
        assert!(diff_json(&a, &a).is_empty());
        assert_eq!(diff_json(&json!(1), &json!("1"))[0].path, "$");
    }
}
