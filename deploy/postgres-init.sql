-- One database per service, as in production: pay never reads trade's tables.
CREATE DATABASE pay;
CREATE DATABASE trade;
