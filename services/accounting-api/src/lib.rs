//! The Accounting API: the only part of Bookkeeper that changes the books.
//!
//! This crate is being built (see the issue "Accounting API"). What exists:
//! - [`money`]: exact conversion between decimal strings and minor units;
//! - [`folio`]: a typed client for Folio's REST API v2 and a faithful local fake
//!   of it (the sandbox, and what the tests run the client against).

// Amounts in code are written kroner_øre (499_00 is 499,00 kr), which clippy
// reads as inconsistent grouping.
#![allow(clippy::inconsistent_digit_grouping)]

pub mod fiken;
pub mod folio;
pub mod money;
pub mod retry;
pub mod sandbox;
