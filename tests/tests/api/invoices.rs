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

/// Posts one call of ECPay's invoice API (`path`, with `data`) to the simulator, as the shipped
/// envelope code builds it; the decrypted answer.
async fn invoice_call(
    api: &TestApi,
    path: &str,
    data: serde_json::Value,
    credentials: &shared::ecpay_invoice::InvoiceCredentials,
) -> Result<serde_json::Value, shared::ecpay_invoice::InvoiceAnswerRejected> {
    let envelope =
        shared::ecpay_invoice::envelope(&data, api.ctx.clock.now().timestamp(), credentials)
            .unwrap();
    let url = format!("http://127.0.0.1:3000/dev/ecpay{path}");
    let reply = api
        .ctx
        .gateway
        .post_json(&url, &envelope.to_string())
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    shared::ecpay_invoice::open_answer(&reply.body, credentials)
}

#[tokio::test]
async fn the_simulated_invoice_api_keeps_ecpays_rules() {
    use shared::domain::invoice::InvoicePreference;
    use shared::ecpay_invoice::{self as invoice, InvoiceCredentials, InvoiceDraft};
    let api = TestApi::start().await;
    let stage = InvoiceCredentials::stage();
    let draft = |relate: &str, preference| InvoiceDraft {
        relate_number: invoice::relate_number("R", relate),
        amount: 500,
        item_name: "點數 500".into(),
        preference,
        email: "mia@example.com".into(),
    };
    let issue = |d: &InvoiceDraft| invoice::issue_data(d, &stage.merchant_id);

    // Issued: 2 capital letters and 8 digits.
    let first = draft("PT1", InvoicePreference::Member);
    let answer = invoice_call(&api, invoice::ISSUE_PATH, issue(&first), &stage)
        .await
        .unwrap();
    let issued = invoice::issued_invoice(&answer).expect("issued");
    assert!(
        issued.invoice_no.len() == 10
            && issued.invoice_no[..2]
                .bytes()
                .all(|b| b.is_ascii_uppercase())
            && issued.invoice_no[2..].bytes().all(|b| b.is_ascii_digit()),
        "{issued:?}"
    );
    // The same RelateNumber again: 10000009, and GetIssue names the invoice already issued.
    let again = invoice_call(&api, invoice::ISSUE_PATH, issue(&first), &stage)
        .await
        .unwrap();
    assert_eq!(invoice::rtn_code(&again), Some(invoice::RELATE_NUMBER_USED));
    let found = invoice_call(
        &api,
        invoice::GET_ISSUE_PATH,
        json!({"MerchantID": stage.merchant_id, "RelateNumber": first.relate_number}),
        &stage,
    )
    .await
    .unwrap();
    assert_eq!(invoice::issued_invoice(&found), Some(issued.clone()));

    // Field rules: SalesAmount is the sum of the items; a donation is never printed.
    let mut wrong_sum = issue(&draft("PT2", InvoicePreference::Member));
    wrong_sum["SalesAmount"] = json!(501);
    let refused = invoice_call(&api, invoice::ISSUE_PATH, wrong_sum, &stage)
        .await
        .unwrap();
    assert_ne!(invoice::rtn_code(&refused), Some(1));
    let mut printed_gift = issue(&draft(
        "PT3",
        InvoicePreference::Donation {
            love_code: "168".into(),
        },
    ));
    printed_gift["Print"] = json!("1");
    let refused = invoice_call(&api, invoice::ISSUE_PATH, printed_gift, &stage)
        .await
        .unwrap();
    assert_ne!(invoice::rtn_code(&refused), Some(1));
    for preference in [
        InvoicePreference::Donation {
            love_code: "168".into(),
        },
        InvoicePreference::MobileBarcode {
            carrier_num: "/ABC+123".into(),
        },
        InvoicePreference::CitizenCertificate {
            carrier_num: "AB12345678901234".into(),
        },
        InvoicePreference::Company {
            tax_id: "12345678".into(),
            company_name: "茶舖有限公司".into(),
        },
    ] {
        let relate = format!("PT4{}", preference_tag(&preference));
        let answer = invoice_call(
            &api,
            invoice::ISSUE_PATH,
            issue(&draft(&relate, preference)),
            &stage,
        )
        .await
        .unwrap();
        assert_eq!(invoice::rtn_code(&answer), Some(1), "{answer}");
    }

    // Allowances never above what remains; an invoice with one is not voided.
    let allowance = |amount: i64| {
        json!({
            "MerchantID": stage.merchant_id, "InvoiceNo": issued.invoice_no,
            "InvoiceDate": issued.invoice_date, "AllowanceNotify": "E",
            "NotifyMail": "mia@example.com", "AllowanceAmount": amount,
            "Items": [{"ItemSeq": 1, "ItemName": "退款", "ItemCount": 1, "ItemWord": "式",
                       "ItemPrice": amount, "ItemTaxType": "1", "ItemAmount": amount}],
        })
    };
    let part = invoice_call(&api, invoice::ALLOWANCE_PATH, allowance(300), &stage)
        .await
        .unwrap();
    assert_eq!(part["IA_Remain_Allowance_Amt"], 200);
    let over = invoice_call(&api, invoice::ALLOWANCE_PATH, allowance(201), &stage)
        .await
        .unwrap();
    assert_ne!(invoice::rtn_code(&over), Some(1));
    let void = json!({"MerchantID": stage.merchant_id, "InvoiceNo": issued.invoice_no,
                      "InvoiceDate": issued.invoice_date, "Reason": "order cancelled"});
    let refused = invoice_call(&api, invoice::INVALID_PATH, void, &stage)
        .await
        .unwrap();
    assert_ne!(invoice::rtn_code(&refused), Some(1));

    // A fresh invoice is voided once.
    let second = draft("PT5", InvoicePreference::Member);
    let other = invoice::issued_invoice(
        &invoice_call(&api, invoice::ISSUE_PATH, issue(&second), &stage)
            .await
            .unwrap(),
    )
    .unwrap();
    let void = json!({"MerchantID": stage.merchant_id, "InvoiceNo": other.invoice_no,
                      "InvoiceDate": other.invoice_date, "Reason": "order cancelled"});
    let done = invoice_call(&api, invoice::INVALID_PATH, void.clone(), &stage)
        .await
        .unwrap();
    assert_eq!(invoice::rtn_code(&done), Some(1));
    let twice = invoice_call(&api, invoice::INVALID_PATH, void, &stage)
        .await
        .unwrap();
    assert_ne!(invoice::rtn_code(&twice), Some(1));

    // An envelope sealed with other keys is refused before anything is read.
    let wrong = InvoiceCredentials {
        merchant_id: stage.merchant_id.clone(),
        hash_key: "0000000000000000".into(),
        hash_iv: "0000000000000000".into(),
    };
    let refused = invoice_call(
        &api,
        invoice::ISSUE_PATH,
        issue(&draft("PT6", InvoicePreference::Member)),
        &wrong,
    )
    .await;
    assert!(
        matches!(refused, Err(invoice::InvoiceAnswerRejected::Transport(_))),
        "{refused:?}"
    );
}

fn preference_tag(preference: &shared::domain::invoice::InvoicePreference) -> &'static str {
    use shared::domain::invoice::InvoicePreference::*;
    match preference {
        Member => "M",
        MobileBarcode { .. } => "B",
        CitizenCertificate { .. } => "C",
        Donation { .. } => "D",
        Company { .. } => "T",
    }
}
