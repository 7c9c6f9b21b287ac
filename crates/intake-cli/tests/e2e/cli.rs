//! Tests of the client commands (being written).
