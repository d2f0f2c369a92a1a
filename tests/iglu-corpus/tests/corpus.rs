//! Every schema of the corpus has a type that compiled and carries its own URI.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

#[test]
fn all_iglu_central_schemas_have_compiled_types() {
    let schemas = eventwire_iglu_corpus::SCHEMAS;
    println!(
        "iglu central: {} of 660 schemas generated and compiled",
        schemas.len()
    );
    assert_eq!(schemas.len(), 660);
    let mut sorted = schemas.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 660, "each type has its own URI");
    for uri in schemas {
        eventwire::SchemaKey::parse(uri).unwrap();
    }
}

#[test]
fn a_corpus_type_round_trips_real_data() {
    use eventwire_iglu_corpus::com_snowplowanalytics_snowplow::LinkClick;
    let data = serde_json::json!({"targetUrl": "https://example.com/x", "elementId": "nav", "elementClasses": ["a", "b"]});
    let click: LinkClick = serde_json::from_value(data.clone()).unwrap();
    assert_eq!(serde_json::to_value(&click).unwrap(), data);
    assert!(
        serde_json::from_value::<LinkClick>(serde_json::json!({"elementId": "nav"})).is_err(),
        "targetUrl is required"
    );
}
