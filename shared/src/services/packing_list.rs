//! What a merchant fulfils from: their orders filtered by status and fulfilment, and a packing list
//! as CSV that Excel opens with its Chinese intact.

use super::orders::{OrderService, OrderView};
use crate::domain::codes::in_taipei;
use crate::domain::{Fulfilment, Order, OrderStatus, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest, MAX_LIMIT};

/// Rows of one packing list at most; the rest follow by the cursor.
pub const PACKING_LIST_MAX_ROWS: usize = 5_000;

/// One CSV export: its text and, when rows remain, the cursor to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackingList {
    pub csv: String,
    pub next_cursor: Option<String>,
}

const HEADER: &str =
    "order_number,created_at,product,quantity,recipient_name,phone,postal_code,address,status";

/// One CSV field: quoted when it holds a comma, quote or line break (RFC 4180), and a leading
/// `=`, `+`, `-`, `@`, tab or carriage return made inert with a `'` so that a product name or
/// address cannot run as a spreadsheet formula on the merchant's computer (OWASP, CSV injection).
fn field(raw: &str) -> String {
    let inert = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_string()
    };
    if inert.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", inert.replace('"', "\"\""))
    } else {
        inert
    }
}

/// One order as a packing-list row; times on Taipei's clock.
fn row(order: &Order) -> String {
    let (name, phone, postal_code, address) = match &order.shipping {
        Some(s) => (
            s.recipient_name.as_str(),
            s.phone.as_str(),
            s.postal_code.as_str(),
            s.address.as_str(),
        ),
        None => ("", "", "", ""),
    };
    [
        field(&order.order_number),
        in_taipei(order.created_at)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        field(&order.product_name),
        order.quantity.to_string(),
        field(name),
        field(phone),
        field(postal_code),
        field(address),
        order.status.as_str().to_string(),
    ]
    .join(",")
}

/// The CSV text of `orders`: a UTF-8 byte order mark (without it Excel reads UTF-8 as the local
/// code page and garbles Chinese), the header, then a CRLF-terminated row each.
pub fn packing_csv(orders: &[Order]) -> String {
    let mut csv = String::from("\u{feff}");
    csv.push_str(HEADER);
    csv.push_str("\r\n");
    for order in orders {
        csv.push_str(&row(order));
        csv.push_str("\r\n");
    }
    csv
}

impl OrderService<'_> {
    /// A merchant's orders, newest first, optionally of one status and fulfilment.
    pub async fn merchant_orders(
        &self,
        merchant: &UserId,
        status: Option<OrderStatus>,
        fulfilment: Option<Fulfilment>,
        page: &PageRequest,
    ) -> Result<Page<OrderView>, AppError> {
        Ok(self
            .store
            .list_merchant_orders(merchant, status, fulfilment, page)
            .await?
            .map(OrderView::from))
    }

    /// The packing list of a merchant's orders (optionally of one status), newest first: at most
    /// [`PACKING_LIST_MAX_ROWS`] rows, read a page of 100 at a time under each page's bounds.
    pub async fn packing_list(
        &self,
        merchant: &UserId,
        status: Option<OrderStatus>,
        cursor: Option<String>,
    ) -> Result<PackingList, AppError> {
        let mut orders = Vec::new();
        let mut page = PageRequest {
            limit: MAX_LIMIT,
            cursor,
        };
        loop {
            page.limit = MAX_LIMIT.min(PACKING_LIST_MAX_ROWS - orders.len());
            let read = self
                .store
                .list_merchant_orders(merchant, status, None, &page)
                .await?;
            orders.extend(read.items);
            page.cursor = read.next_cursor;
            if page.cursor.is_none() || orders.len() >= PACKING_LIST_MAX_ROWS {
                break;
            }
        }
        Ok(PackingList {
            csv: packing_csv(&orders),
            next_cursor: page.cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed_and_formulas_made_inert() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("+886"), "'+886");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("臺北市"), "臺北市");
    }

    #[test]
    fn the_list_starts_with_a_bom_and_the_header() {
        let csv = packing_csv(&[]);
        assert!(csv.starts_with('\u{feff}'));
        assert_eq!(csv.trim_start_matches('\u{feff}'), format!("{HEADER}\r\n"));
    }
}
