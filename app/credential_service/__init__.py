"""The credential service: who may ask, the policy, and the credentials it issues."""
