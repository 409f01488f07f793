//! The OData documents: `$metadata` (CSDL) for data that brings none, and the service document
//! at `/redfish/v1/odata`.

use std::collections::BTreeSet;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::tree::Tree;

/// Builds a CSDL document that references the DMTF schema of every `@odata.type` in `tree`.
pub(crate) fn csdl(tree: &Tree) -> Bytes {
    let mut namespaces: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, resource) in tree.iter() {
        if let Some(body) = &resource.json {
            collect_types(body, &mut namespaces);
        }
    }
    // The core serves these itself, so their types may be missing from the tree.
    for kind in [
        "#SessionCollection.SessionCollection",
        "#Session.v1_7_0.Session",
        "#ManagerAccountCollection.ManagerAccountCollection",
        "#ManagerAccount.v1_10_0.ManagerAccount",
        "#LogEntryCollection.LogEntryCollection",
        "#LogEntry.v1_9_0.LogEntry",
        "#Task.v1_7_0.Task",
        "#Job.v1_2_0.Job",
        "#Message.v1_1_1.Message",
        "#ServiceRoot.v1_0_0.ServiceRoot",
    ] {
        add_type(kind, &mut namespaces);
    }

    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    let mut files: Vec<&str> = namespaces.iter().map(|(file, _)| file.as_str()).collect();
    files.dedup();
    for file in files {
        xml.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{file}_v1.xml\">\n    <edmx:Include Namespace=\"{file}\"/>\n"
        ));
        for (_, namespace) in namespaces.iter().filter(|(f, n)| f == file && n != file) {
            xml.push_str(&format!("    <edmx:Include Namespace=\"{namespace}\"/>\n"));
        }
        xml.push_str("  </edmx:Reference>\n");
    }
    xml.push_str(concat!(
        "  <edmx:Reference Uri=\"http://docs.oasis-open.org/odata/odata/v4.0/errata03/csd01/complete/vocabularies/Org.OData.Core.V1.xml\">\n",
        "    <edmx:Include Namespace=\"Org.OData.Core.V1\" Alias=\"OData\"/>\n",
        "  </edmx:Reference>\n",
        "  <edmx:DataServices>\n",
        "    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n",
        "      <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.v1_0_0.ServiceContainer\"/>\n",
        "    </Schema>\n",
        "  </edmx:DataServices>\n",
        "</edmx:Edmx>\n",
    ));
    Bytes::from(xml)
}

fn collect_types(value: &Value, out: &mut BTreeSet<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item.as_str()) {
                    ("@odata.type", Some(kind)) => add_type(kind, out),
                    _ => collect_types(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_types(item, out)),
        _ => {}
    }
}

/// `#ComputerSystem.v1_20_0.ComputerSystem` adds (`ComputerSystem`, `ComputerSystem.v1_20_0`).
fn add_type(kind: &str, out: &mut BTreeSet<(String, String)>) {
    let kind = kind.trim_start_matches('#');
    let Some((namespace, _)) = kind.rsplit_once('.') else {
        return;
    };
    let file = namespace.split('.').next().unwrap_or(namespace);
    if file.is_empty() || !file.chars().all(|c| c.is_ascii_alphanumeric()) {
        return;
    }
    out.insert((file.to_owned(), file.to_owned()));
    out.insert((file.to_owned(), namespace.to_owned()));
}

/// Builds the OData service document from the service root's top-level links.
pub(crate) fn service_document(root: Option<&Value>) -> Value {
    let mut entries = vec![json!({"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"})];
    if let Some(map) = root.and_then(Value::as_object) {
        for (name, value) in map {
            if let Some(url) = value.get("@odata.id").and_then(Value::as_str) {
                entries.push(json!({"name": name, "kind": "Singleton", "url": url}));
            }
        }
    }
    json!({ "@odata.context": "/redfish/v1/$metadata", "value": entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Resource;

    #[test]
    fn csdl_references_used_schemas() {
        let mut tree = Tree::default();
        tree.insert(
            "/redfish/v1/Systems/1".into(),
            Resource::from_value(json!({"@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem"})),
        );
        let xml = String::from_utf8(csdl(&tree).to_vec()).unwrap();
        assert!(xml.contains("ComputerSystem_v1.xml"));
        assert!(xml.contains("Namespace=\"ComputerSystem.v1_20_0\""));
        assert!(xml.contains("EntityContainer Name=\"Service\""));
    }

    #[test]
    fn service_document_lists_root_links() {
        let root = json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}, "Name": "Root"});
        let doc = service_document(Some(&root));
        assert!(doc["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "Systems"));
    }
}
