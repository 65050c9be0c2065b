//! Every scenario against the API, in one test binary: one link instead of eleven, and the
//! scenarios of every area run side by side on the cores (each starts its own emulator and host,
//! so none shares state with another).

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

mod access;
mod admin;
mod capacity;
mod catalogue;
mod cors;
mod deliveries;
mod edges;
mod expiry;
mod indexes;
mod invoices;
mod invoicing;
mod keys;
mod languages;
mod login_limits;
mod logs;
mod open_recharges;
mod openapi;
mod orders;
mod payments;
mod pickups;
mod point_kinds;
mod recharge;
mod refunds;
mod registration;
mod restore;
mod settlements;
mod slow_clients;
mod takedowns;
mod template;
mod tokens;
mod webhooks;
