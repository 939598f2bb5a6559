//! Databricks connectivity: OAuth machine-to-machine tokens for the app's service principal
//! (`DATABRICKS_CLIENT_ID` / `DATABRICKS_CLIENT_SECRET`, which Databricks Apps inject), used as the
//! Lakebase (PostgreSQL) password, and the credential the server signs workspace calls with
//! (MLflow, tracing). The rest of unified auth (profiles, U2M, on-behalf-of) builds here.

pub mod auth;
pub mod oauth;
