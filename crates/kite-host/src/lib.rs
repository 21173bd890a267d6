//! kite-host
