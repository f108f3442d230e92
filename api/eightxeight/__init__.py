"""8x8's APIs from the ledger's side: the HTTP client (Automation, SMS, Contacts), the reply
dispatcher, and a local fake of 8x8 for tests and trying it out."""
