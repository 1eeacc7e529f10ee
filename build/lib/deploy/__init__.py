"""The deployment: template.yaml generated from the platform's declarations (template.py), and read back
(sam_template.py) by whatever needs to know the deployed functions: the local stack, sam local, the tests."""
