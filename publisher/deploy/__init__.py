"""``publish deploy``: the CloudFormation template, Lambda packages, the release upload and the stack."""
