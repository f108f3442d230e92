"""8x8 round trip: the Automation Builder workflow, replies through the SMS API and the account
blacklist, as domain rules (no HTTP here: the client and the dispatcher live in ``api``)."""
