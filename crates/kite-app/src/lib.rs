//! kite-app
