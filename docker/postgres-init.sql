-- The stack's databases besides msp_airflow (POSTGRES_DB), as jobs/stack.py creates them locally.
CREATE DATABASE msp_mlflow;
CREATE DATABASE msp_mlflow_auth;
CREATE DATABASE msp_warehouse;
