//! kite-http
