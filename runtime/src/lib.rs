//! orchestr8 runtime (being built).
