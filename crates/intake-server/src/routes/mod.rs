//! The HTTP handlers: each extracts its inputs (the [`Caller`](crate::extract::Caller)
//! first, the body last and only after the scope check), calls one service and maps the
//! result to the wire types of [`intake_model::wire`].

pub mod gong;
pub mod intake;
pub mod ops;
