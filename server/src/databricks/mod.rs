//! Databricks connectivity. So far: OAuth machine-to-machine tokens for the app's service principal
//! (`DATABRICKS_CLIENT_ID` / `DATABRICKS_CLIENT_SECRET`, which Databricks Apps inject), used as the
//! Lakebase (PostgreSQL) password. The rest of unified auth (profiles, U2M, on-behalf-of) builds here.

pub mod oauth;
