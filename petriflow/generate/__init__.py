"""petriflow.generate"""
