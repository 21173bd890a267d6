//! kite-engine
