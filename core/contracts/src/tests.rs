use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    h
}

fn violations(c: Checked<'_>) -> Violations {
    match c {
        Checked::Violates(v) => v,
        Checked::Conforms(_) | Checked::OutsideTheApi => vec![],
    }
}

const AUTH: (&str, &str) = ("authorization", "Bearer t");

#[test]
fn every_document_parses_with_its_paths() {
    let count = |v: Vendor| {
        let mut t: Vec<&str> = v.document().operations().iter().map(|o| o.template.as_str()).collect();
        t.dedup();
        t.len()
    };
    assert_eq!(count(Vendor::Fiken), 84);
    assert_eq!(count(Vendor::Folio), 16);
    assert_eq!(Vendor::Fiken.document().base_path(), "/api/v2");
    assert_eq!(Vendor::Folio.document().base_path(), "/v2");
    assert_eq!(Vendor::Discord.document().base_path(), "/api/v10");
}

#[test]
fn literal_segments_win_over_parameters() {
    let d = Vendor::Fiken.document();
    let (op, _) = d.route(&Method::GET, "/api/v2/companies/acme/purchases/drafts").unwrap();
    assert_eq!(op.template, "/companies/{companySlug}/purchases/drafts");
    let (op, params) = d.route(&Method::GET, "/api/v2/companies/acme/purchases/17").unwrap();
    assert_eq!(op.template, "/companies/{companySlug}/purchases/{purchaseId}");
    assert_eq!(params, vec![("companySlug".into(), "acme".into()), ("purchaseId".into(), "17".into())]);
}

#[test]
fn an_endpoint_the_document_lacks_is_a_violation() {
    let d = Vendor::Folio.document();
    let v = violations(d.check_request(
        &Method::GET,
        "/v2/events/457f0b7c-e3d6-44bf-9364-638b3d39dc7a",
        None,
        &headers(&[AUTH]),
        b"",
    ));
    assert!(v[0].contains("no such endpoint"), "{v:?}");
    assert!(matches!(d.check_request(&Method::GET, "/files/x", None, &headers(&[]), b""), Checked::OutsideTheApi));
}

#[test]
fn parameters_are_required_known_and_typed() {
    let d = Vendor::Folio.document();
    let h = headers(&[AUTH]);
    let v = violations(d.check_request(&Method::GET, "/v2/events", Some("endDate=2025-01-01"), &h, b""));
    assert!(v.iter().any(|e| e.contains("`startDate` is missing")), "{v:?}");
    let v = violations(d.check_request(&Method::GET, "/v2/events", Some("startDate=yesterday"), &h, b""));
    assert!(v.iter().any(|e| e.contains("startDate")), "{v:?}");
    let v = violations(d.check_request(&Method::GET, "/v2/events", Some("startDate=2025-01-01&limit=5"), &h, b""));
    assert!(v.iter().any(|e| e.contains("`limit` is not in the document")), "{v:?}");
    assert!(matches!(
        d.check_request(&Method::GET, "/v2/events", Some("startDate=2025-01-01"), &h, b""),
        Checked::Conforms(_)
    ));
}

#[test]
fn request_bodies_are_closed_and_typed() {
    let d = Vendor::Fiken.document();
    let path = "/api/v2/companies/acme/purchases";
    let json = headers(&[AUTH, ("content-type", "application/json")]);
    let good = serde_json::json!({"date": "2026-01-02", "kind": "supplier", "paid": false, "currency": "NOK",
        "lines": [{"description": "x", "vatType": "HIGH", "netPrice": 100, "vat": 25, "account": "6540"}]});
    assert!(matches!(
        d.check_request(&Method::POST, path, None, &json, good.to_string().as_bytes()),
        Checked::Conforms(_)
    ));
    let mut extra = good.clone();
    extra["comment"] = "bk-1".into();
    let v = violations(d.check_request(&Method::POST, path, None, &json, extra.to_string().as_bytes()));
    assert!(v.iter().any(|e| e.contains("comment")), "{v:?}");
    let mut read_only = good.clone();
    read_only["transactionId"] = 5.into();
    assert!(!violations(d.check_request(&Method::POST, path, None, &json, read_only.to_string().as_bytes())).is_empty());
    let text = headers(&[AUTH, ("content-type", "text/plain")]);
    let v = violations(d.check_request(&Method::POST, path, None, &text, good.to_string().as_bytes()));
    assert!(v.iter().any(|e| e.contains("Content-Type")), "{v:?}");
}

#[test]
fn a_form_field_the_document_lacks_is_a_violation() {
    let d = Vendor::Fiken.document();
    let path = "/api/v2/companies/acme/purchases/5/attachments";
    let h = headers(&[AUTH, ("content-type", "multipart/form-data; boundary=XyZ")]);
    let form = |extra: &str| {
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nr.pdf\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"attachToPayment\"\r\n\r\ntrue\r\n{extra}\
             --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.pdf\"\r\n\r\n%PDF-1.4\r\n--XyZ--\r\n"
        )
    };
    assert!(matches!(d.check_request(&Method::POST, path, None, &h, form("").as_bytes()), Checked::Conforms(_)));
    let comment = "--XyZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nbk-1\r\n";
    let v = violations(d.check_request(&Method::POST, path, None, &h, form(comment).as_bytes()));
    assert!(v.iter().any(|e| e.contains("comment")), "{v:?}");
}

#[test]
fn responses_are_checked_against_their_status() {
    let d = Vendor::Folio.document();
    let json = headers(&[("content-type", "application/json")]);
    let signed = serde_json::json!({"accounts": [{"accountNumber": "1", "balance": "-1.00", "balanceUpdatedAt": "2025-01-13T13:37:00Z",
        "matchingTransactionsAt": "2025-01-13T13:37:00Z", "completeTransactionsAt": "2025-01-13T13:37:00Z", "name": "x", "type": "Operational"}]});
    let v = d.check_response(&Method::GET, "/v2/accounts", 200, &json, signed.to_string().as_bytes());
    assert!(v.iter().any(|e| e.contains("balance")), "{v:?}");
    // An error status the document leaves open is allowed; an invented one is not.
    assert!(d.check_response(&Method::GET, "/v2/accounts", 429, &headers(&[]), b"slow down").is_empty());
    assert!(!d.check_response(&Method::GET, "/v2/accounts", 299, &headers(&[]), b"").is_empty());
    // Write-only properties never come back.
    let fiken = Vendor::Fiken.document();
    let p = serde_json::json!({"date": "2026-01-02", "kind": "supplier", "paid": false, "currency": "NOK", "lines": [], "kid": "123"});
    let v = fiken.check_response(&Method::GET, "/api/v2/companies/a/purchases/1", 200, &json, p.to_string().as_bytes());
    assert!(v.iter().any(|e| e.contains("kid")), "{v:?}");
}

#[test]
fn nullable_and_type_arrays_are_understood() {
    // 3.0 `nullable` (Fiken contact.language) and 3.1 type arrays (Discord).
    let fiken = Vendor::Fiken.document();
    let op = fiken.operation(&Method::GET, "/companies/{companySlug}/contacts").unwrap();
    let contact = serde_json::json!([{"name": "x", "language": null}]);
    assert!(fiken.validate_response_body(op, "200", &contact).is_empty());
    let discord = Vendor::Discord.document();
    let h = headers(&[("authorization", "Bot t"), ("content-type", "application/json")]);
    let body = serde_json::json!({"content": null, "nonce": "abc", "message_reference": {"message_id": "1", "fail_if_not_exists": false}});
    let c = discord.check_request(&Method::POST, "/api/v10/channels/5/messages", None, &h, body.to_string().as_bytes());
    assert!(matches!(c, Checked::Conforms(_)), "{c:?}");
    let long = serde_json::json!({"nonce": "x".repeat(26)});
    assert!(!violations(discord.check_request(
        &Method::POST,
        "/api/v10/channels/5/messages",
        None,
        &h,
        long.to_string().as_bytes()
    ))
    .is_empty());
}

#[test]
fn generated_examples_satisfy_their_own_document() {
    for vendor in Vendor::ALL {
        let doc = vendor.document();
        for op in doc.operations() {
            for status in op.statuses() {
                for fullness in [Fullness::Maximal, Fullness::Minimal] {
                    let Some(example) = doc.example(op, status, fullness) else { continue };
                    let v = doc.validate_response_body(op, status, &example);
                    assert!(v.is_empty(), "{} {} {status} {fullness:?}: {v:?}\n{example}", vendor.name(), op.name());
                }
            }
        }
    }
}

#[test]
fn the_minimal_example_holds_only_what_is_required() {
    let doc = Vendor::Fiken.document();
    let op = doc.operation(&Method::GET, "/companies/{companySlug}/purchases/{purchaseId}").unwrap();
    let min = doc.example(op, "200", Fullness::Minimal).unwrap();
    let mut keys: Vec<&str> = min.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["currency", "date", "kind", "lines", "paid"]);
    let max = doc.example(op, "200", Fullness::Maximal).unwrap();
    assert_eq!(max["lines"][0]["netPriceInCurrency"], 4500);
    assert!(max.get("kid").is_none(), "writeOnly never in a response");
}

#[test]
#[should_panic(expected = "does not allow")]
fn a_fake_that_saw_a_violation_fails_the_test_that_ran_it() {
    let log = fake::Log::default();
    log.push(vec!["Folio GET /v2/events/1: the document defines no such endpoint".into()]);
    log.assert_clean("the fake Folio");
}

#[test]
fn repeats_cut_off_forms_and_missing_bodies_are_caught() {
    let folio = Vendor::Folio.document();
    let h = headers(&[AUTH]);
    let v = violations(folio.check_request(
        &Method::GET,
        "/v2/events",
        Some("startDate=2025-01-01&startDate=nonsense"),
        &h,
        b"",
    ));
    assert!(v.iter().any(|e| e.contains("given 2 times")) && v.iter().any(|e| e.contains("nonsense")), "{v:?}");
    let pdf = headers(&[AUTH, ("content-type", "application/pdf")]);
    let path = "/v2/events/457f0b7c-e3d6-44bf-9364-638b3d39dc7a/attachments";
    let v = violations(folio.check_request(&Method::POST, path, None, &pdf, b""));
    assert!(v.iter().any(|e| e.contains("needs a body")), "{v:?}");

    let fiken = Vendor::Fiken.document();
    let form = headers(&[AUTH, ("content-type", "multipart/form-data; boundary=XyZ")]);
    let cut = "--XyZ\r\nContent-Disposition: form-data; name=\"filename\"\r\n\r\nr.pdf\r\n--XyZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nx";
    let v = violations(fiken.check_request(
        &Method::POST,
        "/api/v2/companies/a/purchases/5/attachments",
        None,
        &form,
        cut.as_bytes(),
    ));
    assert!(v.iter().any(|e| e.contains("closing delimiter")), "{v:?}");
}
