//! The plan: a pure function of orders, inventory and architecture.
