"""petriflow.spec"""
