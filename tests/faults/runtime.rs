//! See tests/faults.rs.

#[allow(unused_imports)]
use crate::common::*;
