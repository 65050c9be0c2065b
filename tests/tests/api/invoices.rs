//! Where a member's e-invoices go: each carrier's format checked, named when wrong.

use api_tests::TestApi;
use serde_json::json;

#[tokio::test]
async fn a_member_chooses_a_carrier_and_each_bad_format_is_named() {
    let api = TestApi::start().await;
    let (_, mia, _) = api.signed_up("mia", "MEMBER").await;
    let path = "/api/members/invoice-preference/";
    let first = api.get(path, Some(&mia)).await;
    first.assert_status(200);
    assert_eq!(first.body, json!({"kind": "member"}));
    for (body, field) in [
        (
            json!({"kind": "mobile_barcode", "carrier_num": "ABC1234"}),
            "carrier_num",
        ),
        (
            json!({"kind": "mobile_barcode", "carrier_num": "/abc1234"}),
            "carrier_num",
        ),
        (json!({"kind": "mobile_barcode"}), "carrier_num"),
        (
            json!({"kind": "citizen_certificate", "carrier_num": "A123456789012345"}),
            "carrier_num",
        ),
        (json!({"kind": "donation", "love_code": "12"}), "love_code"),
        (
            json!({"kind": "company", "tax_id": "1234567", "company_name": "茶舖"}),
            "tax_id",
        ),
        (
            json!({"kind": "company", "tax_id": "12345678"}),
            "company_name",
        ),
        (json!({"kind": "paper"}), "kind"),
        (json!({}), "kind"),
    ] {
        let refused = api.put(path, body.clone(), Some(&mia)).await;
        refused.assert_status(400);
        assert!(
            refused.body["error"]["fields"][field].is_string(),
            "{body}: {}",
            refused.body
        );
    }
    // Nothing changed by a refusal.
    assert_eq!(
        api.get(path, Some(&mia)).await.body,
        json!({"kind": "member"})
    );
    for body in [
        json!({"kind": "mobile_barcode", "carrier_num": "/ABC+1.-"}),
        json!({"kind": "citizen_certificate", "carrier_num": "AB12345678901234"}),
        json!({"kind": "donation", "love_code": "168"}),
        json!({"kind": "company", "tax_id": "12345678", "company_name": "茶舖有限公司"}),
        json!({"kind": "member"}),
    ] {
        let kept = api.put(path, body.clone(), Some(&mia)).await;
        kept.assert_status(200);
        assert_eq!(kept.body, body);
        assert_eq!(api.get(path, Some(&mia)).await.body, body);
    }
}
