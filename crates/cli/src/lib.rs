//! The resizer command: admin (customers, keys, usage), dev (local gateway) and client calls.
